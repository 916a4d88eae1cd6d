"""TLS to clients (TLSBind): real clients over TLS, the way applications use
them: redis-cli --tls, redis-py sync and asyncio (ssl=True; RESP2 and RESP3),
ioredis and node-redis (tls), with and without a client certificate.
Pipelines, transactions, pub/sub, blocking commands and big replies, a slow
reader's backlog, and clients on the plain listener beside them."""

import asyncio
import json
import os
import socket
import ssl
import struct
import subprocess
import threading
import time

import pytest
import redis
import redis.asyncio

from conftest import HOST, wait_for
from tlsclients import Certs, connect, roundtrip, start_tls_proxy, tls_ping

JS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "js")
NODE = __import__("shutil").which("node")
HAVE_JS = NODE and os.path.isdir(os.path.join(JS, "node_modules", "ioredis")) \
    and os.path.isdir(os.path.join(JS, "node_modules", "redis"))
BIG = 5 * 1024 * 1024 + 17


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return Certs(str(tmp_path_factory.mktemp("tls-clients")))


@pytest.fixture(scope="module")
def tproxy(cluster, certs):
    """TLSAuthClients optional: clients without a certificate, and with one the CA signed."""
    p = start_tls_proxy(cluster, certs, "optional")
    yield p
    p.stop()


def py_client(tproxy, certs, proto, client_cert=False, cls=redis.Redis, **kw):
    if client_cert:
        kw.update(ssl_certfile=certs.client.cert, ssl_keyfile=certs.client.key)
    return cls(host=HOST, port=tproxy.tls_port, protocol=proto, ssl=True, ssl_ca_certs=certs.ca.cert,
               socket_timeout=60, **kw)


# -- redis-cli --

def cli(tproxy, certs, *args, client_cert=False, stdin=None):
    cmd = ["redis-cli", "--tls", "--cacert", certs.ca.cert, "-h", HOST, "-p", str(tproxy.tls_port)]
    if client_cert:
        cmd += ["--cert", certs.client.cert, "--key", certs.client.key]
    out = subprocess.run(cmd + list(args), input=stdin, capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_redis_cli(tproxy, certs):
    assert cli(tproxy, certs, "SET", "tls:cli", "hello") == b"OK\n"
    assert cli(tproxy, certs, "GET", "tls:cli", client_cert=True) == b"hello\n"
    assert b"proto 3\n" in cli(tproxy, certs, "-3", "HELLO", "3")
    # a pipe of commands in one stream (--pipe), then a big reply read back
    lines = "".join("SET tls:clipipe:%d %d\r\n" % (i, i) for i in range(2000)).encode()
    assert b"errors: 0, replies: 2000" in cli(tproxy, certs, "--pipe", stdin=lines)
    value = b"z" * (2 * 1024 * 1024)
    r = redis.Redis(host=HOST, port=tproxy.port)
    r.set("tls:clibig", value)
    assert cli(tproxy, certs, "GET", "tls:clibig") == value + b"\n"


# -- redis-py, sync --

@pytest.mark.parametrize("proto", [2, 3], ids=["resp2", "resp3"])
def test_redis_py(tproxy, certs, proto):
    c = py_client(tproxy, certs, proto, client_cert=proto == 3)
    try:
        me = c.client_info()
        assert int(me["resp"]) == proto and me["laddr"] == "%s:%d" % (HOST, tproxy.tls_port)
        p = c.pipeline(transaction=False)
        for i in range(3000):
            p.set("tls:py:%d" % i, i)
            p.get("tls:py:%d" % i)
        assert p.execute()[1::2] == [b"%d" % i for i in range(3000)]
        p = c.pipeline(transaction=True)
        p.set("{tls:py}t", 1).incr("{tls:py}t").get("{tls:py}t")
        assert p.execute() == [True, 2, b"2"]
        data = {"tls:mk:%d" % i: "v%d" % i for i in range(200)}
        assert c.mset(data) and c.mget(list(data)) == [v.encode() for v in data.values()]
        big = os.urandom(BIG)
        c.set("tls:py:big", big)
        assert c.get("tls:py:big") == big
        c.delete("tls:py:list")
        c.rpush("tls:py:list", *[b"e%d" % i for i in range(50000)])
        assert c.lrange("tls:py:list", 0, -1) == [b"e%d" % i for i in range(50000)]
        c.hset("tls:py:hash", mapping={"f%d" % i: "x" * 100 for i in range(5000)})
        assert len(c.hgetall("tls:py:hash")) == 5000
    finally:
        c.close()


@pytest.mark.parametrize("proto", [2, 3], ids=["resp2", "resp3"])
def test_redis_py_pubsub_and_blocking(tproxy, certs, proto):
    c = py_client(tproxy, certs, proto)
    other = py_client(tproxy, certs, proto, client_cert=True)
    try:
        ps = c.pubsub()
        ps.subscribe("tls:chan")
        assert ps.get_message(timeout=5)["type"] == "subscribe"
        assert other.publish("tls:chan", "m1") >= 1
        msg = ps.get_message(timeout=5)
        assert msg["type"] == "message" and msg["data"] == b"m1"
        ps.close()
        key = "{tls:blk}%d" % proto
        c.delete(key)
        t = threading.Timer(0.3, lambda: other.rpush(key, "late"))
        t.start()
        start = time.time()
        assert list(c.blpop([key], timeout=20)) == [key.encode(), b"late"]
        assert time.time() - start < 15
        t.join()
        assert c.blpop([key], timeout=0.3) is None
    finally:
        c.close()
        other.close()


# -- redis-py, asyncio --

@pytest.mark.parametrize("proto", [2, 3], ids=["resp2", "resp3"])
def test_redis_py_asyncio(tproxy, certs, proto):
    async def run():
        c = py_client(tproxy, certs, proto, client_cert=True, cls=redis.asyncio.Redis, max_connections=100)
        try:
            async with c.pipeline(transaction=False) as p:
                for i in range(2000):
                    p.set("tls:aio:%d" % i, i)
                    p.get("tls:aio:%d" % i)
                out = await p.execute()
            assert out[1::2] == [b"%d" % i for i in range(2000)]
            big = os.urandom(BIG)
            await c.set("tls:aio:big", big)
            assert await c.get("tls:aio:big") == big
            results = await asyncio.gather(*[c.incr("tls:aio:n") for _ in range(100)])  # 100 handshakes at once
            assert sorted(results)[-1] - sorted(results)[0] == 99
            ps = c.pubsub()
            await ps.subscribe("tls:aio:chan")
            assert (await ps.get_message(timeout=5))["type"] == "subscribe"
            await c.publish("tls:aio:chan", "x")
            msg = None
            for _ in range(50):
                msg = await ps.get_message(timeout=1)
                if msg:
                    break
            assert msg and msg["data"] == b"x"
            await ps.aclose()
            assert await c.blpop(["tls:aio:empty"], timeout=0.3) is None
        finally:
            await c.aclose()
    asyncio.run(run())


# -- ioredis, node-redis --

@pytest.mark.skipif(not HAVE_JS, reason="node or the npm clients are missing (scripts/test.sh installs them when node exists)")
@pytest.mark.parametrize("lib,resp,client_cert", [("ioredis", 3, False), ("ioredis", 2, True),
                                                  ("node-redis", 2, False), ("node-redis", 3, True)])
def test_node_clients(tproxy, certs, lib, resp, client_cert):
    env = dict(os.environ, GEPROXY_TLS_CA=certs.ca.cert)
    if client_cert:
        env.update(GEPROXY_TLS_CERT=certs.client.cert, GEPROXY_TLS_KEY=certs.client.key)
    scenarios = ["setinfo", "pipeline", "multi", "mget_mset", "scan", "lua", "pubsub", "big", "blocking"]
    out = subprocess.run([NODE, os.path.join(JS, "client_check.js"), lib, str(tproxy.tls_port), str(resp)]
                         + scenarios, capture_output=True, text=True, timeout=180, cwd=JS, env=env)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    assert lines, "no result from %s: %s %s" % (lib, out.stdout[-500:], out.stderr[-1500:])
    results = json.loads(lines[-1])
    assert set(results) == set(scenarios), results
    failed = {k: v for k, v in results.items() if v != "ok"}
    assert not failed, failed


# -- the slow paths of the writer, over TLS --

def test_slow_reader_gets_every_byte(tproxy, certs):
    """A client that asks for 40 MiB and reads nothing for a while: the replies
    wait in its backlog, then arrive whole, in order, while other TLS clients
    are served."""
    r = redis.Redis(host=HOST, port=tproxy.port)
    value = os.urandom(1024 * 1024)
    r.set("tls:slow", value)
    s = connect(tproxy.tls_port, certs)
    try:
        s.sendall(b"GET tls:slow\r\n" * 40)
        time.sleep(1.0)                        # the proxy's send buffer fills; the rest waits
        t = time.time()
        for _ in range(5):                     # meanwhile another TLS client is answered at once
            other = connect(tproxy.tls_port, certs)
            assert roundtrip(other, b"PING\r\n") == b"+PONG\r\n"
            other.close()
        assert time.time() - t < 10
        want = (b"$%d\r\n" % len(value) + value + b"\r\n") * 40
        s.settimeout(60)
        got = bytearray()
        while len(got) < len(want):
            chunk = s.recv(1 << 20)
            assert chunk, "closed after %d of %d bytes" % (len(got), len(want))
            got += chunk
        assert bytes(got) == want
    finally:
        s.close()


def test_deep_pipeline_in_one_write(tproxy, certs):
    """10,000 commands in one TLS write (many records), replies in order."""
    s = connect(tproxy.tls_port, certs)
    try:
        s.sendall(b"".join(b"*3\r\n$3\r\nSET\r\n$11\r\ntls:d:%05d\r\n$5\r\n%05d\r\n" % (i, i) for i in range(10000)))
        s.settimeout(30)
        buf = b""
        while buf.count(b"\r\n") < 10000:
            chunk = s.recv(65536)
            assert chunk
            buf += chunk
        assert buf == b"+OK\r\n" * 10000
        s.sendall(b"".join(b"GET tls:d:%05d\r\n" % i for i in range(10000)))
        want = b"".join(b"$5\r\n%05d\r\n" % i for i in range(10000))
        buf = b""
        while len(buf) < len(want):
            chunk = s.recv(65536)
            assert chunk
            buf += chunk
        assert buf == want
    finally:
        s.close()


def test_plain_listener_beside_tls(tproxy, certs):
    r = redis.Redis(host=HOST, port=tproxy.port)
    assert r.set("tls:both", "1") and r.get("tls:both") == b"1"
    s = connect(tproxy.tls_port, certs)
    try:
        assert roundtrip(s, b"GET tls:both\r\n", until=b"1\r\n") == b"$1\r\n1\r\n"
    finally:
        s.close()


def test_client_gone_while_blocked_and_client_kill(tproxy, certs):
    """A TLS client that hangs up during BLPOP is noticed (its blocked count
    goes back); CLIENT KILL from the plain port closes a TLS client; a client
    that resets before its handshake leaves no trace but a debug line."""
    r = redis.Redis(host=HOST, port=tproxy.port)
    s = connect(tproxy.tls_port, certs)
    s.sendall(b"BLPOP tls:never 0\r\n")
    assert wait_for(lambda: r.info("clients")["blocked_clients"] >= 1, timeout=10)
    s.close()
    assert wait_for(lambda: r.info("clients")["blocked_clients"] == 0, timeout=10)
    s = connect(tproxy.tls_port, certs)
    try:
        roundtrip(s, b"CLIENT SETNAME tlsvictim\r\n")
        assert r.client_kill_filter(_type=None, laddr="%s:%d" % (HOST, tproxy.tls_port)) >= 1
        s.settimeout(10)
        try:
            assert s.recv(100) == b""
        except (ssl.SSLError, ConnectionResetError):
            pass
    finally:
        s.close()
    for _ in range(5):
        raw = socket.create_connection((HOST, tproxy.tls_port))
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        raw.close()                                   # RST at once
    assert tls_ping(tproxy.tls_port, certs, timeout=5)
    assert "Traceback" not in tproxy.log() and "failed with" not in tproxy.log()
