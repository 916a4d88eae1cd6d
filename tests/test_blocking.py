"""Blocking commands on private connections: each unblocks when another client
pushes, times out with nil as Redis does, keeps its keys in one slot, never
holds up other clients, and lets go of its backend connection when its client
disconnects."""

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from clusterhelp import backend_connections, owner_of, wait_for
from conftest import replies
from geproxy.resp import command

CROSS = "^Keys in request don't hash to the same slot"


def blocked_on(cluster, key):
    return cluster.client(owner_of(cluster, key)).info("clients")["blocked_clients"]


def unblock_by(proxy, cluster, key, call, push):
    """Run call(client) in a thread until it blocks on the node owning `key`,
    then push(other client); return (result, seconds blocked)."""
    c, other = redis.Redis(port=proxy.port, protocol=2), redis.Redis(port=proxy.port, protocol=2)
    before = blocked_on(cluster, key)
    out = {}

    def run():
        t = time.time()
        out["v"] = call(c)
        out["t"] = time.time() - t
    th = threading.Thread(target=run)
    th.start()
    assert wait_for(lambda: blocked_on(cluster, key) > before, 3), "never blocked on the owner"
    time.sleep(0.1)
    assert "v" not in out
    push(other)
    th.join(5)
    c.close()
    other.close()
    assert not th.is_alive()
    return out["v"], out["t"]


CASES = [
    ("blpop", lambda c: c.blpop(["bk:l"], 5), lambda o: o.rpush("bk:l", "a"), (b"bk:l", b"a")),
    ("brpop", lambda c: c.brpop(["bk:l", "bk:l"], 5), lambda o: o.rpush("bk:l", "x", "y"), (b"bk:l", b"y")),
    ("blmove", lambda c: c.blmove("{bk}s", "{bk}d", 5, "LEFT", "RIGHT"), lambda o: o.rpush("{bk}s", "m"), b"m"),
    ("brpoplpush", lambda c: c.brpoplpush("{bk}s", "{bk}d", 5), lambda o: o.rpush("{bk}s", "n"), b"n"),
    ("blmpop", lambda c: c.blmpop(5, 2, "{bk}m1", "{bk}m2", direction="LEFT", count=2),
     lambda o: o.rpush("{bk}m2", "p", "q", "r"), [b"{bk}m2", [b"p", b"q"]]),
    ("bzpopmin", lambda c: c.bzpopmin(["bk:z"], 5), lambda o: o.zadd("bk:z", {"lo": 1, "hi": 2}), (b"bk:z", b"lo", 1.0)),
    ("bzpopmax", lambda c: c.bzpopmax(["bk:z"], 5), lambda o: o.zadd("bk:z", {"lo": 1, "hi": 2}), (b"bk:z", b"hi", 2.0)),
    ("bzmpop", lambda c: c.bzmpop(5, 1, ["bk:z"], min=True), lambda o: o.zadd("bk:z", {"w": 3}), [b"bk:z", [[b"w", b"3"]]]),
]


@pytest.mark.parametrize("name,call,push,expected", CASES, ids=[c[0] for c in CASES])
def test_unblocks_when_another_client_pushes(proxy, cluster, r, name, call, push, expected):
    r.delete("bk:l", "{bk}s", "{bk}d", "{bk}m1", "{bk}m2", "bk:z")
    key = {"blmove": "{bk}s", "brpoplpush": "{bk}s", "blmpop": "{bk}m1", "bzpopmin": "bk:z",
           "bzpopmax": "bk:z", "bzmpop": "bk:z"}.get(name, "bk:l")
    got, took = unblock_by(proxy, cluster, key, call, push)
    if isinstance(got, tuple) or isinstance(expected, tuple):
        got, expected = tuple(got), tuple(expected)
    assert got == expected and took < 3
    if name in ("blmove", "brpoplpush"):
        assert r.lrange("{bk}d", 0, -1) == [expected]


def test_xread_and_xreadgroup_block(proxy, cluster, r):
    r.delete("bk:s")
    r.xadd("bk:s", {"f": "0"}, id="1-0")
    got, _ = unblock_by(proxy, cluster, "bk:s", lambda c: c.xread({"bk:s": "$"}, block=5000),
                        lambda o: o.xadd("bk:s", {"f": "1"}, id="2-0"))
    assert got == [[b"bk:s", [(b"2-0", {b"f": b"1"})]]]
    r.xgroup_create("bk:s", "g", id="$")
    got, _ = unblock_by(proxy, cluster, "bk:s", lambda c: c.xreadgroup("g", "c1", {"bk:s": ">"}, block=5000),
                        lambda o: o.xadd("bk:s", {"f": "2"}, id="3-0"))
    assert got == [[b"bk:s", [(b"3-0", {b"f": b"2"})]]]
    assert r.xpending("bk:s", "g")["pending"] == 1


def test_timeouts_answer_nil_like_redis(r, r3, proxy, raw):
    r.delete("bk:t", "{bk}t1", "{bk}t2", "bk:tz", "bk:ts")
    r.xadd("bk:ts", {"a": 1})
    calls = [
        ["BLPOP", "bk:t", "0.2"], ["BRPOP", "bk:t", "0.2"], ["BLMOVE", "{bk}t1", "{bk}t2", "LEFT", "RIGHT", "0.2"],
        ["BRPOPLPUSH", "{bk}t1", "{bk}t2", "0.2"], ["BLMPOP", "0.2", "1", "bk:t", "RIGHT"],
        ["BZPOPMIN", "bk:tz", "0.2"], ["BZPOPMAX", "bk:tz", "0.2"], ["BZMPOP", "0.2", "1", "bk:tz", "MAX"],
        ["XREAD", "BLOCK", "200", "STREAMS", "bk:ts", "$"],
    ]
    for proto in (2, 3):
        c = raw(proxy.port)
        c.send(command("HELLO", str(proto)))
        c.recv_until(replies(1))
        for cmd in calls:
            t = time.time()
            c.send(command(*cmd))
            nil = b"_\r\n" if proto == 3 else b"*-1\r\n"  # Redis 7.0: a null array for all of them
            assert (cmd[0], c.recv_until(replies(1))) == (cmd[0], nil)
            assert 0.15 < time.time() - t < 1.5
    for client in (r, r3):
        assert client.blpop(["bk:t"], 0.2) is None
        assert client.bzmpop(0.2, 1, ["bk:tz"], min=True) is None
        assert not client.xread({"bk:ts": "$"}, block=200)


def test_timeout_longer_than_server_timeout(r):
    """The test proxy has ServerTimeout 1: a blocking command has its own limit."""
    t = time.time()
    assert r.blpop(["bk:long"], 1.6) is None
    assert 1.5 < time.time() - t < 3


def test_crossslot(r):
    a, b = "bk:x:a", "bk:x:b"
    for cmd in (["BLPOP", a, b, 1], ["BRPOP", a, b, 1], ["BLMOVE", a, b, "LEFT", "LEFT", 1],
                ["BRPOPLPUSH", a, b, 1], ["BLMPOP", 1, 2, a, b, "LEFT"], ["BZPOPMIN", a, b, 1],
                ["BZMPOP", 1, 2, a, b, "MIN"], ["XREAD", "BLOCK", 100, "STREAMS", a, b, "$", "$"]):
        t = time.time()
        with pytest.raises(redis.ResponseError, match=CROSS):
            r.execute_command(*cmd)
        assert time.time() - t < 0.5


def test_wait_counts_replicas(r):
    r.set("bk:w", 1)
    t = time.time()
    assert r.wait(1, 2000) == 1            # one replica per master: at once
    assert time.time() - t < 1
    t = time.time()
    assert r.wait(2, 300) == 1             # never two: after the timeout
    assert 0.25 < time.time() - t < 2


def test_wait_waits_for_this_clients_write(r, cluster):
    """WAIT is about the caller's own writes: with the replica of the written
    key's master stopped, WAIT 1 must time out with 0 (the write is not there)."""
    master = owner_of(cluster, "bk:wait")
    replica = next(p for p in cluster.replicas()
                   if cluster.client(p).info("replication").get("master_port") == master)
    cluster.kill(replica, signal.SIGSTOP)
    try:
        assert r.set("bk:wait", "x")
        t = time.time()
        assert r.wait(1, 400) == 0
        assert time.time() - t > 0.3
    finally:
        cluster.kill(replica, signal.SIGCONT)


def test_fifty_blocked_clients_each_get_one_item_and_others_are_not_held_up(proxy, cluster, r):
    r.delete("bk:many")
    before = blocked_on(cluster, "bk:many")
    clients = [redis.Redis(port=proxy.port) for _ in range(50)]
    with ThreadPoolExecutor(50) as ex:
        futs = [ex.submit(c.blpop, ["bk:many"], 10) for c in clients]
        assert wait_for(lambda: blocked_on(cluster, "bk:many") == before + 50, 5)
        worst = 0.0
        for i in range(200):
            t = time.time()
            r.set("bk:fast:%d" % i, i)
            assert r.get("bk:fast:%d" % i) == str(i).encode()
            worst = max(worst, time.time() - t)
        assert worst < 0.2
        assert r.rpush("bk:many", *range(50)) == 50
        got = [f.result(timeout=5) for f in futs]
    assert sorted(int(v) for _, v in got) == list(range(50))
    assert r.llen("bk:many") == 0
    for c in clients:
        c.close()


def test_disconnect_while_blocked_releases_the_backend_connection(make_proxy, cluster, raw):
    p = make_proxy()
    r = redis.Redis(port=p.port)
    r.dbsize()  # shared links to every master are up
    r.delete("bk:gone")
    base = backend_connections(p.port)
    blocked = blocked_on(cluster, "bk:gone")
    c = raw(p.port)
    c.send(command("BLPOP", "bk:gone", "0"))
    assert wait_for(lambda: blocked_on(cluster, "bk:gone") == blocked + 1, 3)
    assert backend_connections(p.port) == base + 1
    c.close()
    assert wait_for(lambda: backend_connections(p.port) == base, 5), backend_connections(p.port)
    assert wait_for(lambda: blocked_on(cluster, "bk:gone") == blocked, 3)
    assert r.rpush("bk:gone", "kept") == 1
    assert r.lpop("bk:gone") == b"kept"
    r.close()


def test_pipelined_commands_around_a_blocking_pop_keep_order(proxy, raw, r):
    """One Redis runs a connection's commands in order: the DEL comes before
    the BLPOP, so the BLPOP finds nothing and times out."""
    r.delete("bk:ord")
    r.rpush("bk:ord", "warm")
    assert r.blpop(["bk:ord"], 1) == (b"bk:ord", b"warm")  # an idle private connection now exists
    c = raw(proxy.port)
    c.send(command("RPUSH", "bk:ord", "a") + command("DEL", "bk:ord") + command("BLPOP", "bk:ord", "0.3")
           + command("RPUSH", "bk:ord", "b") + command("BLPOP", "bk:ord", "1") + command("LLEN", "bk:ord"))
    assert c.recv_until(replies(6)) == (b":1\r\n:1\r\n*-1\r\n:1\r\n"
                                        b"*2\r\n$6\r\nbk:ord\r\n$1\r\nb\r\n:0\r\n")


def test_disconnect_while_blocked_with_a_pipelined_command_behind(make_proxy, cluster, raw):
    """BLPOP 0, then a PING behind it, then the client goes: the waiter must
    still be dropped, or it holds a backend connection and swallows a push."""
    p = make_proxy()
    r = redis.Redis(port=p.port)
    r.dbsize()
    r.delete("bk:gone2")
    base = backend_connections(p.port)
    blocked = blocked_on(cluster, "bk:gone2")
    c = raw(p.port)
    c.send(command("BLPOP", "bk:gone2", "0"))
    assert wait_for(lambda: blocked_on(cluster, "bk:gone2") == blocked + 1, 3)
    c.send(command("PING"))  # pipelined behind the BLPOP, as a client may
    time.sleep(0.2)
    c.close()
    assert wait_for(lambda: blocked_on(cluster, "bk:gone2") == blocked, 3), "dead client still blocked"
    assert wait_for(lambda: backend_connections(p.port) == base, 3), backend_connections(p.port)
    assert r.rpush("bk:gone2", "kept") == 1
    assert r.lpop("bk:gone2") == b"kept"
    r.close()


@pytest.mark.parametrize("fresh", [False, True])
def test_blocked_clients_are_served_in_the_order_they_came(make_proxy, cluster, raw, fresh):
    """Two clients send BRPOPLPUSH one after the other and a third pushes at
    once, none waiting for the others (Redis's own list suite does this).  The
    first must be served first (its WRONGTYPE target gives the element back to
    the second), whatever private connections had to be dialled: a second
    blocking command must not block before the first, nor the push arrive
    before either.  Many rounds, as it is a race when wrong; `fresh` starts a
    new proxy each round, so both blocking commands dial their connections."""
    p = make_proxy()
    r = redis.Redis(port=p.port)
    for _ in range(5 if fresh else 20):
        if fresh:
            p.stop()
            p = make_proxy()
            r.close()
            r = redis.Redis(port=p.port)
        r.delete("blist{t}", "target1{t}", "target2{t}")
        r.set("target1{t}", "nolist")
        first, second = raw(p.port), raw(p.port)
        first.send(command("BRPOPLPUSH", "blist{t}", "target1{t}", "0"))
        second.send(command("BRPOPLPUSH", "blist{t}", "target2{t}", "0"))
        r.lpush("blist{t}", "foo")
        assert first.recv_until(replies(1), timeout=5).startswith(b"-WRONGTYPE")
        assert second.recv_until(replies(1), timeout=5) == b"$3\r\nfoo\r\n"
        assert r.lrange("target2{t}", 0, -1) == [b"foo"]
        first.close()
        second.close()
    r.delete("blist{t}", "target1{t}", "target2{t}")
    r.close()
