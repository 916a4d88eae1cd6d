"""The ServerTLS* settings checked before anything runs (one line naming the
key, non-zero exit), and connection.dial's TLS handshake bounded by its
timeout.  No cluster: the live tests are in test_tls_nodes.py."""

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from conftest import ROOT
from tlshelp import make_ca, make_cert


@pytest.fixture(scope='module')
def certs(tmp_path_factory):
    d = str(tmp_path_factory.mktemp('tls'))
    ca = make_ca(d, 'ca')
    return SimpleNamespace(ca=ca, node=make_cert(d, 'node', ca), client=make_cert(d, 'proxy', ca, sans=[]), dir=d)


def _check(tmp_path, pool_lines):
    conf = tmp_path / 'proxy.conf'
    conf.write_text('Bind = 127.0.0.1:1\n[ClusterServerPool]\nServers = 127.0.0.1:2\n' + pool_lines)
    out = subprocess.run([sys.executable, '-m', 'geproxy', '-t', '-c', str(conf)], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    return out.returncode, out.stderr.decode().strip()


@pytest.mark.parametrize('lines,key,says', [
    ('ServerTLS = yes\nServerTLSCAFile = missing.pem\n', 'ServerTLSCAFile', 'No such file'),
    ('ServerTLS = yes\nServerTLSCAFile = {d}/proxy.key\n', 'ServerTLSCAFile', 'no usable PEM certificate'),
    ('ServerTLS = yes\nServerTLSCertFile = {d}/proxy.crt\n', 'ServerTLSCertFile', 'no private key'),
    ('ServerTLS = yes\nServerTLSKeyFile = {d}/proxy.key\n', 'ServerTLSKeyFile', 'without ServerTLSCertFile'),
    ('ServerTLS = yes\nServerTLSCertFile = {d}/proxy.crt\nServerTLSKeyFile = {d}/node.key\n', 'ServerTLSKeyFile',
     'does not match'),
    ('ServerTLSCAFile = {d}/ca.crt\n', 'ServerTLSCAFile', 'ServerTLS is off'),
    ('ServerTLS = maybe\n', 'ServerTLS', 'wrong type'),
])
def test_bad_tls_settings_are_one_line_naming_the_key(certs, tmp_path, lines, key, says):
    rc, err = _check(tmp_path, lines.format(d=certs.dir))
    assert rc != 0 and len(err.splitlines()) == 1, err
    assert 'ClusterServerPool.%s' % key in err and says in err, err


def test_tls_files_relative_to_the_config_file(certs, tmp_path):
    for name in ('ca.crt', 'proxy.crt', 'proxy.key'):
        (tmp_path / name).write_bytes(open(os.path.join(certs.dir, name), 'rb').read())
    rc, err = _check(tmp_path, 'ServerTLS = yes\nServerTLSCAFile = ca.crt\nServerTLSCertFile = proxy.crt\n'
                               'ServerTLSKeyFile = proxy.key\nServerTLSName = redis.internal\n')
    assert rc == 0, err


def test_handshake_is_bounded_and_leaks_nothing(certs):
    """A node that accepts and never speaks TLS: each dial fails within its
    timeout, as a BackendError naming the node, and no socket is left open."""
    code = '''
import os, time
from gevent import socket
from types import SimpleNamespace as NS
from geproxy.connection import BackendError, dial
from geproxy.tls import node_tls
tls = node_tls(NS(ServerTLS=True, ServerTLSVerify=True, ServerTLSCAFile=%r, ServerTLSCertFile="",
                  ServerTLSKeyFile="", ServerTLSName=""))
mute = socket.socket(); mute.bind(("127.0.0.1", 0)); mute.listen(64)
port = mute.getsockname()[1]
fds = len(os.listdir("/proc/self/fd"))
worst = 0
for _ in range(5):
    t = time.time()
    try:
        dial("127.0.0.1", port, 0.3, tls=tls)
    except BackendError as e:
        assert str(e).startswith("TLS handshake with 127.0.0.1:%%d failed: timed out" %% port), e
    worst = max(worst, time.time() - t)
print(worst, len(os.listdir("/proc/self/fd")) - fds)
''' % certs.ca.cert
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         timeout=60)
    assert out.returncode == 0, out.stdout.decode()
    worst, leaked = out.stdout.split()
    assert 0.25 < float(worst) < 3.0 and int(leaked) == 0
