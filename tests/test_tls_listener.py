"""The TLS listener itself: client certificates (require / optional / off)
and the clear log line of a refusal, a handshake that stalls or is not TLS
holding up no one, SIGHUP reading a renewed certificate without dropping
connected clients (one process, and two workers), a TLS-only proxy, protocol
versions, and configurations that cannot work refused in one line naming
the key."""

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

import pytest

from conftest import HOST, ROOT, free_port, render_config, wait_for
from opshelp import children
from tlsclients import (Certs, connect, peer_cn, refused, roundtrip, start_tls_proxy, swap_cert, tls_ping,
                        tls_top, wait_log)
from tlshelp import make_cert


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return Certs(str(tmp_path_factory.mktemp("tls-listener")))


def works(port, certs, client=None):
    s = connect(port, certs, client)
    try:
        return roundtrip(s, b"PING\r\n") == b"+PONG\r\n"
    finally:
        s.close()


# -- client certificates --

def test_require_refuses_missing_and_foreign_certificates(cluster, certs):
    p = start_tls_proxy(cluster, certs, "require")
    try:
        assert works(p.tls_port, certs, certs.client)
        assert refused(p.tls_port, certs)                       # none
        assert wait_log(p, "no client certificate (TLSAuthClients require)"), p.log_tail()
        assert refused(p.tls_port, certs, certs.rogue)          # signed by another CA
        assert wait_log(p, "client certificate refused: unable to get local issuer certificate"), p.log_tail()
        line = [x for x in p.log().splitlines() if "no client certificate" in x][0]
        assert "TLS handshake failed: client 127.0.0.1:" in line and "Traceback" not in p.log()
        assert works(p.tls_port, certs, certs.client)           # and the proxy goes on
    finally:
        p.stop()


def test_optional_and_off(cluster, certs):
    opt = start_tls_proxy(cluster, certs, "optional")
    off = start_tls_proxy(cluster, certs, "off")
    try:
        assert works(opt.tls_port, certs) and works(opt.tls_port, certs, certs.client)
        assert refused(opt.tls_port, certs, certs.rogue)        # given, so checked
        assert wait_log(opt, "client certificate refused"), opt.log_tail()
        assert works(off.tls_port, certs) and works(off.tls_port, certs, certs.rogue)   # not asked for
    finally:
        opt.stop()
        off.stop()


# -- handshakes that do not come, or are not TLS --

def test_stalled_handshakes_hold_up_no_one(cluster, certs):
    p = start_tls_proxy(cluster, certs, "optional", top={"TLSHandshakeTimeout": 2})
    stallers = []
    try:
        for i in range(20):              # connect and say nothing, or half a client hello
            s = socket.create_connection((HOST, p.tls_port), timeout=30)
            if i % 2:
                s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
            stallers.append(s)
        t = time.time()
        for _ in range(10):
            assert works(p.tls_port, certs)
        assert tls_ping(p.tls_port, certs, timeout=5)
        assert time.time() - t < 8, "clients waited behind stalled handshakes"
        # each staller is closed once TLSHandshakeTimeout is up
        for s in stallers:
            s.settimeout(30)
            try:
                assert s.recv(100) == b""
            except ConnectionResetError:
                pass
        assert time.time() - t < 25
        assert wait_log(p, "not done within TLSHandshakeTimeout (2.0s): closed"), p.log_tail()
    finally:
        for s in stallers:
            s.close()
        p.stop()


def test_plain_resp_on_the_tls_port(cluster, certs):
    p = start_tls_proxy(cluster, certs, "off")
    try:
        with socket.create_connection((HOST, p.tls_port), timeout=10) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            s.settimeout(10)
            try:
                data = s.recv(100)
            except ConnectionResetError:
                data = b""
            assert not data.startswith(b"+PONG")
        assert wait_log(p, "not a TLS client hello (wrong version number)"), p.log_tail()
        assert works(p.tls_port, certs)
    finally:
        p.stop()


def test_protocol_versions(cluster, certs):
    p = start_tls_proxy(cluster, certs, "off", top={"TLSProtocols": "TLSv1.3"})
    try:
        assert refused(p.tls_port, certs, maximum_version=ssl.TLSVersion.TLSv1_2)
        assert wait_log(p, "TLS handshake failed"), p.log_tail()
        s = connect(p.tls_port, certs)
        assert s.version() == "TLSv1.3"
        s.close()
    finally:
        p.stop()
    p = start_tls_proxy(cluster, certs, "off", top={"TLSProtocols": "TLSv1.2", "TLSCiphers": "ECDHE+AESGCM"})
    try:
        s = connect(p.tls_port, certs)
        assert s.version() == "TLSv1.2" and "GCM" in s.cipher()[0]
        s.close()
    finally:
        p.stop()


# -- SIGHUP --

def own_server_cert(certs, tmp_path):
    """A copy of the proxy certificate that a test may replace."""
    d = tmp_path / "served"
    d.mkdir()
    crt, key = str(d / "server.crt"), str(d / "server.key")
    shutil.copyfile(certs.server.cert, crt)
    shutil.copyfile(certs.server.key, key)
    return type(certs.server)(crt, key, certs.ca.cert)


@pytest.mark.parametrize("workers", [1, 2])
def test_sighup_reads_a_renewed_certificate(cluster, certs, tmp_path, workers):
    served = own_server_cert(certs, tmp_path)
    p = start_tls_proxy(cluster, certs, "optional", top={"WorkerProcesses": workers, "TLSCertFile": served.cert,
                                                         "TLSKeyFile": served.key})
    try:
        if workers > 1:
            assert wait_for(lambda: len(children(p.pid)) == workers, timeout=10)
        assert wait_for(lambda: all(tls_ping(p.tls_port, certs, 2) for _ in range(10)), timeout=10)
        assert peer_cn(p.tls_port, certs) == "server"
        held = [connect(p.tls_port, certs) for _ in range(6)]    # on every worker, likely
        swap_cert(certs, "renewed-%d" % workers, served)
        time.sleep(0.3)
        os.kill(p.pid, signal.SIGHUP)
        assert wait_for(lambda: all(peer_cn(p.tls_port, certs) == "renewed-%d" % workers for _ in range(12)),
                        timeout=10), "a new client still sees the old certificate"
        for s in held:                                           # connected clients were not dropped
            assert roundtrip(s, b"PING\r\n") == b"+PONG\r\n"
        # a key that does not match: the certificate in use stays, and the log says why
        shutil.copyfile(certs.client.key, served.key)
        os.kill(p.pid, signal.SIGHUP)
        assert wait_log(p, "keeping the certificate in use: TLSKeyFile: the key does not match"), p.log_tail()
        assert peer_cn(p.tls_port, certs) == "renewed-%d" % workers
        for s in held:
            assert roundtrip(s, b"PING\r\n") == b"+PONG\r\n"
            s.close()
        assert p.proc.poll() is None and "Traceback" not in p.log()
    finally:
        p.stop()


# -- TLS only --

def test_tls_only(cluster, certs, tmp_path):
    port = free_port()
    conf = tmp_path / "tls-only.conf"
    conf.write_text(render_config(cluster, port, top=dict(tls_top(certs, port, "off"), Bind='""')))
    log = open(tmp_path / "out", "wb")
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "geproxy", "-c", str(conf)], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert wait_for(lambda: tls_ping(port, certs), timeout=15), (tmp_path / "out").read_text()
        s = connect(port, certs)
        assert b"tcp_port:%d" % port in roundtrip(s, b"INFO server\r\n", until=b"\r\n\r\n")
        s.close()
        assert "listening on 127.0.0.1:%d (TLS)" % port in (tmp_path / "out").read_text()
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


# -- configurations that cannot work --

def check(tmp_path, cluster, top, start=False):
    """(exit code, stderr lines) of `geproxy -t` (or a real start) on this configuration."""
    conf = tmp_path / "bad.conf"
    conf.write_text(render_config(cluster, free_port(), top=top))
    args = [sys.executable, "-m", "geproxy", "-c", str(conf)] + ([] if start else ["-t"])
    out = subprocess.run(args, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True,
                         timeout=60)
    return out.returncode, out.stderr.strip().splitlines()


def test_bad_configurations_name_the_key(cluster, certs, tmp_path):
    port = free_port()
    base = tls_top(certs, port, "require")
    other_key = make_cert(certs.dir, "other-server", certs.ca).key
    cases = [
        ({"TLSCertFile": str(tmp_path / "missing.crt")}, "TLSCertFile: cannot read"),
        ({"TLSKeyFile": other_key}, "TLSKeyFile: the key does not match the certificate in TLSCertFile"),
        ({"TLSKeyFile": certs.ca.cert}, "TLSKeyFile: "),
        ({"TLSCertFile": None}, "TLSCertFile: required with TLSBind"),
        ({"TLSCAFile": None}, "TLSCAFile: required with TLSAuthClients require"),
        ({"TLSCAFile": str(tmp_path / "nope.crt")}, "TLSCAFile: cannot read"),
        ({"TLSAuthClients": "off"}, "TLSCAFile: set, but TLSAuthClients is off"),
        ({"TLSAuthClients": "maybe"}, "TLSAuthClients"),
        ({"TLSProtocols": "TLSv9"}, "TLSProtocols: unknown 'tlsv9'"),
        ({"TLSProtocols": "TLSv1.1, TLSv1.3"}, "TLSProtocols: tlsv1.1 tlsv1.3 leaves a gap"),
        ({"TLSCiphers": "NO-SUCH-CIPHER"}, "TLSCiphers: no cipher matches"),
        ({"TLSHandshakeTimeout": "soon"}, "TLSHandshakeTimeout"),
        ({"TLSBind": "127.0.0.1:99999"}, "TLSBind"),
        ({"Bind": '""', "TLSBind": '""', "TLSCertFile": None, "TLSKeyFile": None, "TLSCAFile": None,
          "TLSAuthClients": None}, "Bind: empty, and no TLSBind: nothing to listen on"),
        ({"TLSBind": None, "TLSAuthClients": None, "TLSCAFile": None}, "TLSCertFile: set, but TLSBind is empty"),
    ]
    for change, want in cases:
        rc, lines = check(tmp_path, cluster, dict(base, **change))
        assert rc != 0 and len(lines) == 1 and want in lines[0] and "Traceback" not in lines[0], (change, rc, lines)
    rc, lines = check(tmp_path, cluster, dict(base, TLSKeyFile=other_key), start=True)   # a real start too
    assert rc != 0 and lines and "TLSKeyFile" in lines[-1], lines
    rc, lines = check(tmp_path, cluster, base)
    assert rc == 0, lines


def test_tls_port_taken(cluster, certs, tmp_path):
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        rc, lines = check(tmp_path, cluster, tls_top(certs, port, "off"), start=True)
    assert rc == 1 and lines == ["geproxy: cannot listen on TLSBind 127.0.0.1:%d: Address already in use" % port], lines


def test_etc_tls_conf_checks_with_certificates_in_place(certs, tmp_path):
    """etc/tls.conf (which includes etc/proxy.conf) with certificate files beside it, as its
    comment says to make them: `geproxy -t` takes it, and names the file when one is missing."""
    etc = tmp_path / "etc"
    shutil.copytree(os.path.join(ROOT, "etc"), str(etc), ignore=shutil.ignore_patterns("tls"))
    (etc / "tls").mkdir()
    for src, name in ((certs.server.cert, "proxy.crt"), (certs.server.key, "proxy.key"), (certs.ca.cert, "ca.crt")):
        shutil.copyfile(src, str(etc / "tls" / name))

    def run():
        return subprocess.run([sys.executable, "-m", "geproxy", "-t", "-c", str(etc / "tls.conf")], cwd=ROOT,
                              env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True, timeout=60)
    out = run()
    assert out.returncode == 0, out.stderr
    os.remove(str(etc / "tls" / "ca.crt"))
    out = run()
    assert out.returncode == 2 and "TLSCAFile: cannot read" in out.stderr and str(etc / "tls" / "ca.crt") in out.stderr
