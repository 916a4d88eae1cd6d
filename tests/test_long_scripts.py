"""A script that runs long does not take its node hostage: SCRIPT KILL and
FUNCTION KILL reach every master on connections of their own, other clients
get Redis's -BUSY at once (as a direct client would), and afterwards the node
serves again on the same proxy."""
import threading
import time

import pytest
import redis

from clusterhelp import backend_connections, owner_of
from conftest import HOST, wait_for

SPIN = "local i = 0 while true do i = i + 1 end"
LIB = """#!lua name=geproxy_spin
redis.register_function{function_name='spin', callback=function(keys, args) while true do end end,
                        flags={'no-writes'}}
"""


@pytest.fixture
def quick_busy(cluster):
    """Redis answers -BUSY after 200 ms of script (instead of 5 s), on every node."""
    nodes = [cluster.client(p) for p in cluster.alive()]
    old = [n.config_get("busy-reply-threshold")["busy-reply-threshold"] for n in nodes]
    for n in nodes:
        n.config_set("busy-reply-threshold", 200)
    yield
    for n, v in zip(nodes, old):
        wait_for(lambda: _try_restore(n, v), timeout=10)
        n.close()


def _try_restore(node, value):
    try:
        node.config_set("busy-reply-threshold", value)
        return True
    except redis.ResponseError:  # BUSY: the script is still being killed
        return False


def run_in_thread(fn):
    out = {}

    def target():
        try:
            out["reply"] = fn()
        except Exception as e:  # noqa: BLE001 - the reply under test
            out["error"] = e
    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, out


@pytest.mark.parametrize("server_timeout", [0, 1])
def test_script_kill_frees_a_node_held_by_a_script(make_proxy, cluster, quick_busy, server_timeout):
    p = make_proxy(pool={"ServerTimeout": server_timeout})
    runner = redis.Redis(host=HOST, port=p.port, socket_timeout=30)
    other = redis.Redis(host=HOST, port=p.port, socket_timeout=10)
    admin = redis.Redis(host=HOST, port=p.port, socket_timeout=10)
    assert other.set("{spin}x", "before")
    base = backend_connections(p.port)
    elsewhere = owner_of(cluster, "{other}y") != owner_of(cluster, "{spin}k")  # asked before the node is busy
    masters = len(cluster.masters())
    t, out = run_in_thread(lambda: runner.eval(SPIN, 1, "{spin}k"))
    time.sleep(1.5)
    # another client's command on that node: Redis's -BUSY, not a hang
    start = time.time()
    with pytest.raises(redis.ResponseError, match="^BUSY"):
        other.get("{spin}x")
    assert time.time() - start < 2
    if elsewhere:  # other nodes are unaffected
        start = time.time()
        other.get("{other}y")
        assert time.time() - start < 0.5
    assert admin.script_kill() is True
    t.join(10)
    assert not t.is_alive()
    if server_timeout == 0:
        assert "Script killed" in str(out.get("error")), out
    else:  # ServerTimeout 1 s failed the link under the script first
        assert "error" in out, out
    assert other.get("{spin}x") == b"before"
    assert runner.set("{spin}x", "after") and runner.get("{spin}x") == b"after"
    with pytest.raises(redis.ResponseError, match="NOTBUSY"):
        admin.script_kill()
    # the connection left to the script is closed once the script's reply is in;
    # SCRIPT KILL's own connections (one per master) wait idle for reuse
    assert wait_for(lambda: backend_connections(p.port) == base + masters, timeout=5)
    other.delete("{spin}x")
    for c in (runner, other, admin):
        c.close()


def test_function_kill(make_proxy, quick_busy):
    p = make_proxy(pool={"ServerTimeout": 0})
    admin = redis.Redis(host=HOST, port=p.port, socket_timeout=10)
    admin.function_load(LIB, replace=True)
    try:
        runner = redis.Redis(host=HOST, port=p.port, socket_timeout=30)
        t, out = run_in_thread(lambda: runner.fcall("spin", 1, "{fspin}k"))
        time.sleep(1.5)
        with pytest.raises(redis.ResponseError, match="^BUSY"):
            admin.get("{fspin}k")
        assert admin.execute_command("FUNCTION", "KILL") == b"OK"
        t.join(10)
        assert "killed" in str(out.get("error")).lower(), out
        assert admin.set("{fspin}k", "v") and admin.get("{fspin}k") == b"v"
        with pytest.raises(redis.ResponseError, match="NOTBUSY"):
            admin.execute_command("FUNCTION", "KILL")
        admin.delete("{fspin}k")
        runner.close()
    finally:
        wait_for(lambda: _try_delete(admin), timeout=10)
        admin.close()


def _try_delete(admin):
    try:
        admin.function_delete("geproxy_spin")
        return True
    except redis.ResponseError:
        return False


def test_keyless_script_meets_ping_with_busy(make_proxy, quick_busy):
    """A script declaring no keys starts on the home master, where PING goes:
    while it runs, PING gets Redis's -BUSY, as on one Redis; after SCRIPT KILL,
    PONG."""
    p = make_proxy(pool={"ServerTimeout": 0})
    runner = redis.Redis(host=HOST, port=p.port, socket_timeout=30)
    admin = redis.Redis(host=HOST, port=p.port, socket_timeout=10)
    t, out = run_in_thread(lambda: runner.eval(SPIN, 0))
    assert wait_for(lambda: _busy(admin), timeout=5)
    assert admin.script_kill() is True
    t.join(10)
    assert "Script killed" in str(out.get("error")), out
    assert admin.ping() is True
    for c in (runner, admin):
        c.close()


def _busy(client):
    try:
        client.ping()
        return False
    except redis.ResponseError as e:
        return str(e).startswith("BUSY")


def test_command_sent_with_a_long_script_is_not_held_by_it(make_proxy, cluster, quick_busy):
    """Another client's command reaching the node link together with a script
    must not wait for the script to end: Redis sends no reply on a connection
    while a script runs there, even to commands it ran before the script, so a
    script goes alone on its connection.  Many rounds, as the timing varies."""
    p = make_proxy(pool={"ServerTimeout": 0})
    admin = redis.Redis(host=HOST, port=p.port, socket_timeout=10)
    for _ in range(8):
        runner = RawSock(p.port)
        other = RawSock(p.port)
        runner.send(b"*3\r\n$4\r\nEVAL\r\n$%d\r\n%s\r\n$1\r\n0\r\n" % (len(SPIN), SPIN.encode()))
        other.send(b"*1\r\n$4\r\nPING\r\n")
        start = time.time()
        reply = other.read(5)
        assert reply in (b"+PONG\r\n",) or reply.startswith(b"-BUSY"), reply
        assert time.time() - start < 3
        assert wait_for(lambda: _kill(admin), timeout=10)
        assert runner.read(10).startswith(b"-ERR Script killed")
        runner.close()
        other.close()
    admin.close()


def _kill(client):
    try:
        return client.script_kill()
    except redis.ResponseError as e:
        return False if "NOTBUSY" in str(e) else None


class RawSock:
    def __init__(self, port):
        import socket
        self.s = socket.create_connection((HOST, port))

    def send(self, data):
        self.s.sendall(data)

    def read(self, timeout):
        self.s.settimeout(timeout)
        return self.s.recv(4096)

    def close(self):
        self.s.close()


def test_function_stats_shows_the_running_function(make_proxy, quick_busy):
    p = make_proxy(pool={"ServerTimeout": 0})
    admin = redis.Redis(host=HOST, port=p.port, socket_timeout=10)
    admin.function_load(LIB, replace=True)
    try:
        stats = lambda: admin.execute_command("FUNCTION", "STATS")  # noqa: E731
        assert stats()[b"running_script"] is None
        runner = redis.Redis(host=HOST, port=p.port, socket_timeout=30)
        t, out = run_in_thread(lambda: runner.fcall("spin", 1, "{fstat}k"))
        assert wait_for(lambda: stats()[b"running_script"] is not None, timeout=5)
        assert stats()[b"running_script"][b"name"] == b"spin"  # from the node that runs it
        assert admin.execute_command("FUNCTION", "KILL") == b"OK"
        t.join(10)
        runner.close()
    finally:
        wait_for(lambda: _try_delete(admin), timeout=10)
        admin.close()
