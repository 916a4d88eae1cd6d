"""Replies of any size through the proxy, RESP2 and RESP3, on the real cluster.

For every command that returns a big aggregate, at sizes past each buffer and
threshold the proxy has (64 KiB reads, the old 128 KiB "wait for twice the
bytes" rule) up to 64 MiB: the reply is complete and correct, and right after
it a small command from another client on the same node answers within
100 ms (a stalled node link would hold it up).
"""
import threading
import time

import pytest
import redis

from conftest import HOST, start_proxy

KIB, MIB = 1024, 1024 * 1024
SIZES = [70 * KIB, 150 * KIB, 300 * KIB, 1 * MIB, 20 * MIB, 64 * MIB]


def shape(size):
    """(element count, element size) for a reply of about `size` bytes."""
    elem = max(1000, size // 1000)
    return max(1, size // elem), elem


def values(n, elem, tag=b""):
    return [tag + b"%08d:" % i + b"v" * (elem - 9 - len(tag)) for i in range(n)]


@pytest.fixture(scope="module")
def big_proxy(cluster):
    """A proxy whose ServerTimeout lets a node take its time: building a 64 MiB
    reply (a Lua table, a SORT) can take seconds on a busy machine, and the
    session proxy's 1 s would then fail the request, not show a stall."""
    p = start_proxy(cluster, pool={"ServerTimeout": 30})
    yield p
    p.stop()


@pytest.fixture(scope="module")
def clients(big_proxy):
    proxy = big_proxy
    made = {p: redis.Redis(host=HOST, port=proxy.port, protocol=p, socket_timeout=60) for p in (2, 3)}
    probe = redis.Redis(host=HOST, port=proxy.port, socket_timeout=5)
    yield made, probe
    for c in list(made.values()) + [probe]:
        c.close()


def probe_same_node(probe, key):
    """A small command on the big key's node, from another client: fast."""
    t = time.perf_counter()
    probe.set(b"{%s}probe" % key, b"1")
    assert probe.get(b"{%s}probe" % key) == b"1"
    took = time.perf_counter() - t
    assert took < 0.3, "a small command on the same node took %.3fs after a big reply" % took
    probe.delete(b"{%s}probe" % key)


def fill(r, build, size):
    n, elem = shape(size)
    key = b"big:%d" % size
    r.delete(key)
    expected = build(r, key, n, elem)
    return key, expected


def lists(r, key, n, elem):
    vals = values(n, elem)
    r.rpush(key, *vals)
    return vals


def hashes(r, key, n, elem):
    mapping = {b"f%d" % i: v for i, v in enumerate(values(n, elem))}
    r.hset(key, mapping=mapping)
    return mapping


def sets(r, key, n, elem):
    vals = values(n, elem)
    r.sadd(key, *vals)
    return set(vals)


def zsets(r, key, n, elem):
    vals = values(n, elem)
    r.zadd(key, {v: i for i, v in enumerate(vals)})
    return [(v, float(i)) for i, v in enumerate(vals)]


def streams(r, key, n, elem):
    vals = values(n, elem)
    p = r.pipeline(transaction=False)
    for v in vals:
        p.xadd(key, {b"f": v})
    ids = p.execute()
    return [(i, {b"f": v}) for i, v in zip(ids, vals)]


CASES = {
    "lrange": (lists, lambda r, k: r.lrange(k, 0, -1), lambda got, exp: got == exp),
    "hgetall": (hashes, lambda r, k: r.hgetall(k), lambda got, exp: got == exp),
    "smembers": (sets, lambda r, k: r.smembers(k), lambda got, exp: set(got) == exp),
    "zrange": (zsets, lambda r, k: r.zrange(k, 0, -1, withscores=True),
               lambda got, exp: [(m, float(s)) for m, s in got] == exp),
    "xrange": (streams, lambda r, k: r.xrange(k), lambda got, exp: [(i, f) for i, f in got] == exp),
    "eval": (lists, lambda r, k: r.eval("return {KEYS[1], {redis.call('lrange', KEYS[1], 0, -1), {1, 'x'}}}", 1, k),
             lambda got, exp: got[1][0] == exp and got[1][1] == [1, b"x"]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_big_aggregate(clients, name):
    made, probe = clients
    build, read, same = CASES[name]
    for size in SIZES:
        key, expected = fill(made[2], build, size)
        try:
            for proto, r in made.items():
                got = read(r, key)
                assert same(got, expected), "%s of %d bytes, RESP%d: wrong reply" % (name, size, proto)
                probe_same_node(probe, key)
        finally:
            made[2].delete(key)


@pytest.mark.parametrize("across", [False, True], ids=["one-slot", "across-slots"])
def test_big_mget(clients, across):
    made, probe = clients
    for size in SIZES:
        n, elem = shape(size)
        keys = [(b"mg%d:%d" % (i, size)) if across else (b"{mg}:%d:%d" % (size, i)) for i in range(n)]
        vals = values(n, elem)
        made[2].mset(dict(zip(keys, vals)))
        try:
            for proto, r in made.items():
                assert r.mget(keys) == vals, "MGET of %d bytes, RESP%d" % (size, proto)
                probe_same_node(probe, keys[-1] if across else b"mg")
        finally:
            made[2].delete(*keys)


def test_big_keys_and_scan(clients):
    """Fan-out listings of long key names, merged by the proxy."""
    made, probe = clients
    for size in SIZES:
        n, elem = shape(size)
        names = [b"bigname:%d:" % size + v for v in values(n, elem)]
        made[2].mset({k: b"1" for k in names})
        try:
            for proto, r in made.items():
                assert sorted(r.keys(b"bigname:%d:*" % size)) == sorted(names), "KEYS, %d, RESP%d" % (size, proto)
                seen = list(r.scan_iter(match=b"bigname:%d:*" % size, count=100000))
                assert sorted(seen) == sorted(names), "SCAN, %d, RESP%d" % (size, proto)
                probe_same_node(probe, names[0])
        finally:
            made[2].delete(*names)


def test_big_readers_beside_small_gets(proxy):
    """16 clients read 400 KB lists while 16 others run GETs: no errors, and
    the GETs' worst latency stays under a second."""
    setup = redis.Redis(host=HOST, port=proxy.port)
    keys = [b"reader:%d" % i for i in range(16)]
    val = values(400, 1000)
    for k in keys:
        setup.delete(k)
        setup.rpush(k, *val)
    setup.mset({b"small:%d" % i: b"v%d" % i for i in range(16)})
    stop = time.time() + 5
    errors, worst, reads = [], [0.0], [0]

    def reader(key, proto):
        c = redis.Redis(host=HOST, port=proxy.port, protocol=proto, socket_timeout=10)
        try:
            while time.time() < stop:
                if c.lrange(key, 0, -1) != val:
                    errors.append("wrong LRANGE reply")
                reads[0] += 1
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    def getter(i):
        c = redis.Redis(host=HOST, port=proxy.port, socket_timeout=10)
        try:
            while time.time() < stop:
                t = time.perf_counter()
                if c.get(b"small:%d" % i) != b"v%d" % i:
                    errors.append("wrong GET reply")
                worst[0] = max(worst[0], time.perf_counter() - t)
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=reader, args=(k, 2 + i % 2)) for i, k in enumerate(keys)]
    threads += [threading.Thread(target=getter, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    setup.delete(*keys)
    setup.close()
    assert not errors, errors[:5]
    assert reads[0] > 16
    assert worst[0] < 1.0, "worst small GET took %.3fs" % worst[0]
