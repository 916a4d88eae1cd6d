"""Commands about the whole keyspace, sent to every master and merged (DBSIZE,
KEYS, RANDOMKEY, FLUSHALL, SCRIPT, FUNCTION, PUBSUB introspection) and SCAN,
which walks the masters behind one cursor."""

import time
from collections import Counter

import pytest
import redis

from clusterhelp import keys_per_master, wait_for
from conftest import replies
from geproxy.resp import command


def full_scan(client, **kw):
    seen, cursor, rounds = [], 0, 0
    while True:
        cursor, keys = client.scan(cursor, **kw)
        seen.extend(keys)
        rounds += 1
        assert rounds < 10000
        if cursor == 0:
            return seen, rounds


def fill(r, prefix, n):
    p = r.pipeline(transaction=False)
    for i in range(n):
        p.set("%s:%d" % (prefix, i), i)
    p.execute()
    return {("%s:%d" % (prefix, i)).encode() for i in range(n)}


def test_scan_returns_every_key_once(r, cluster):
    keys = fill(r, "fo:scan", 2000)
    for port in cluster.masters():
        assert cluster.client(port).keys("fo:scan:*"), "every master holds some"
    seen, rounds = full_scan(r, match="fo:scan:*", count=500)
    counts = Counter(seen)
    assert set(counts) == keys
    assert max(counts.values()) == 1, [k for k, n in counts.items() if n > 1][:5]
    assert rounds >= 3  # at least one round per master


def test_scan_match_count_type_pass_through(r, cluster):
    fill(r, "fo:typ:s", 60)
    for i in range(40):
        r.rpush("fo:typ:l:%d" % i, 1)
    seen, _ = full_scan(r, match="fo:typ:*", _type="list", count=1000)
    assert sorted(seen) == sorted(("fo:typ:l:%d" % i).encode() for i in range(40))
    # COUNT reaches the node: a small COUNT takes many more rounds than a big one
    _, small = full_scan(r, match="fo:typ:*", count=10)
    _, big = full_scan(r, match="fo:typ:*", count=100000)
    assert big == 1 and small > big   # a master done with keys still missing: on to the next, same call


def test_scan_resp3_and_raw_cursor(r3, proxy, raw):
    keys = fill(r3, "fo:scan3", 50)
    seen, _ = full_scan(r3, match="fo:scan3:*", count=1000)
    assert set(seen) == keys and len(seen) == 50
    c = raw(proxy.port)
    c.send(command("SCAN", "0", "MATCH", "fo:nomatch:*", "COUNT", "10"))
    got = c.recv_until(replies(1))
    assert got.startswith(b"*2\r\n$") and got.endswith(b"*0\r\n")


@pytest.mark.parametrize("cursor", ["abc", "1.5", " 1", "1 ", "-", "0x1", "18446744073709551616"])
def test_scan_invalid_cursor(r, cursor):
    with pytest.raises(redis.ResponseError, match="invalid cursor"):
        r.execute_command("SCAN", cursor)
    assert r.ping()


def test_dbsize_is_the_sum_over_masters(r, cluster):
    fill(r, "fo:db", 300)
    for _ in range(5):  # a key expiring in between could differ by one: look again
        total = r.dbsize()
        direct = sum(cluster.client(p).dbsize() for p in cluster.masters())
        if total == direct:
            break
    assert total == direct and total >= 300


def test_keys_from_every_master(r, cluster):
    per = keys_per_master(cluster, "fo:keys", 4)
    everything = [k for ks in per.values() for k in ks]
    r.mset({k: 1 for k in everything})
    got = r.keys("fo:keys:*")
    assert sorted(got) == sorted(k.encode() for k in everything) and len(got) == 12
    assert r.keys("fo:keys:nothing*") == []


def test_randomkey_returns_an_existing_key(r):
    r.set("fo:rnd", 1)
    for _ in range(20):
        k = r.randomkey()
        assert k is not None and r.exists(k) == 1


def test_flushall_empties_every_master(r, cluster):
    per = keys_per_master(cluster, "fo:flush", 3)
    r.mset({k: 1 for ks in per.values() for k in ks})
    assert all(cluster.client(p).dbsize() > 0 for p in cluster.masters())
    assert r.flushall() is True
    assert [cluster.client(p).dbsize() for p in cluster.masters()] == [0, 0, 0]
    assert r.dbsize() == 0 and r.randomkey() is None and r.keys("*") == []
    seen, _ = full_scan(r)
    assert seen == []


def test_script_load_then_evalsha_on_every_master(r, cluster):
    per = keys_per_master(cluster, "fo:sha", 1)
    body = "return redis.call('SET', KEYS[1], ARGV[1])"
    sha = r.script_load(body)
    for port, (k,) in per.items():
        assert cluster.client(port).script_exists(sha) == [True]
        assert r.evalsha(sha, 1, k, "via-" + k) == b"OK"
        assert cluster.client(port).get(k) == ("via-" + k).encode()
    assert r.script_exists(sha) == [True]


def test_script_exists_only_when_every_master_has_it(r, cluster):
    body = "return 'only-on-one-master-%f'" % time.time()
    one = cluster.masters()[1]
    sha = cluster.client(one).script_load(body)
    everywhere = r.script_load("return 'everywhere'")
    assert r.script_exists(sha, everywhere, "0" * 40) == [False, True, False]
    raw_reply = r.execute_command("SCRIPT", "EXISTS", sha, everywhere)
    assert list(raw_reply) in ([0, 1], [False, True])


LIB = """#!lua name=geproxy_fo
redis.register_function('fo_get', function(keys, args) return redis.call('GET', keys[1]) end)
redis.register_function{function_name='fo_ro', callback=function(keys, args) return redis.call('GET', keys[1]) end,
                        flags={'no-writes'}}
redis.register_function('fo_set', function(keys, args) return redis.call('SET', keys[1], args[1]) end)
"""


def test_functions_load_call_list_delete(r, cluster):
    try:
        r.function_delete("geproxy_fo")
    except redis.ResponseError:
        pass
    assert r.function_load(LIB) in (b"geproxy_fo", "geproxy_fo")
    for port in cluster.masters():
        names = [lib[1] for lib in cluster.client(port).function_list(library="geproxy_fo")]
        assert names == [b"geproxy_fo"]
    per = keys_per_master(cluster, "fo:fn", 1)
    for port, (k,) in per.items():
        assert r.fcall("fo_set", 1, k, "fn-" + k) == b"OK"
        assert r.fcall("fo_get", 1, k) == ("fn-" + k).encode()
        assert r.fcall_ro("fo_ro", 1, k) == ("fn-" + k).encode()
    with pytest.raises(redis.ResponseError, match="already exists"):
        r.function_load(LIB)
    assert r.function_load(LIB, replace=True) in (b"geproxy_fo", "geproxy_fo")
    listed = r.function_list(library="geproxy_fo")
    assert len(listed) == 1 and listed[0][1] == b"geproxy_fo"
    assert r.function_delete("geproxy_fo") in (True, b"OK")
    for port in cluster.masters():
        assert cluster.client(port).function_list(library="geproxy_fo") == []
    with pytest.raises(redis.ResponseError, match="Function not found"):
        r.fcall("fo_get", 1, "fo:fn:x")


def test_pubsub_introspection(proxy, cluster):
    subs = [redis.Redis(port=proxy.port, protocol=2) for _ in range(3)]
    pss = [c.pubsub() for c in subs]
    r = redis.Redis(port=proxy.port, protocol=2)
    try:
        base_numpat = r.pubsub_numpat()
        pss[0].subscribe("fo:ch:a", "fo:ch:b")
        pss[1].subscribe("fo:ch:a")
        pss[2].psubscribe("fo:pat:*", "fo:pat2:*")
        for ps in pss:
            for _ in range(2 if ps is not pss[1] else 1):
                assert ps.get_message(timeout=2)["type"] in ("subscribe", "psubscribe")
        assert sorted(r.pubsub_channels("fo:ch:*")) == [b"fo:ch:a", b"fo:ch:b"]
        assert r.pubsub_numsub("fo:ch:a", "fo:ch:b", "fo:ch:none") == [
            (b"fo:ch:a", 2), (b"fo:ch:b", 1), (b"fo:ch:none", 0)]
        assert r.pubsub_numpat() == base_numpat + 2
        # the counts are exactly what the nodes say together
        direct = sum(dict(cluster.client(p).pubsub_numsub("fo:ch:a"))[b"fo:ch:a"] for p in cluster.masters())
        assert direct == 2
        pss[0].unsubscribe("fo:ch:b")
        assert pss[0].get_message(timeout=2)["type"] == "unsubscribe"
        assert wait_for(lambda: r.pubsub_numsub("fo:ch:b") == [(b"fo:ch:b", 0)], 3)
        assert r.pubsub_channels("fo:ch:*") == [b"fo:ch:a"]
    finally:
        for ps in pss:
            ps.close()
        for c in subs + [r]:
            c.close()


def test_pubsub_numsub_repeated_channel_like_redis(proxy, cluster):
    """Redis answers one pair per argument, repeated channels included."""
    sub = redis.Redis(port=proxy.port, protocol=2).pubsub()
    r = redis.Redis(port=proxy.port, protocol=2)
    try:
        sub.subscribe("fo:dup")
        assert sub.get_message(timeout=2)["type"] == "subscribe"
        node = cluster.client(cluster.masters()[0])
        assert len(node.pubsub_numsub("fo:dup", "fo:dup")) == 2
        assert r.pubsub_numsub("fo:dup", "fo:dup") == [(b"fo:dup", 1), (b"fo:dup", 1)]
    finally:
        sub.close()
        r.close()


def test_pubsub_numsub_resp3_is_an_array_like_redis(proxy, raw):
    """Redis 7 answers PUBSUB NUMSUB with a flat array in RESP3 too (redis-py relies on it)."""
    sub = redis.Redis(port=proxy.port, protocol=2).pubsub()
    try:
        sub.subscribe("fo:r3")
        assert sub.get_message(timeout=2)["type"] == "subscribe"
        c = raw(proxy.port)
        c.send(command("HELLO", "3"))
        c.recv_until(replies(1))
        c.send(command("PUBSUB", "NUMSUB", "fo:r3", "fo:r3none"))
        assert c.recv_until(replies(1)) == b"*4\r\n$5\r\nfo:r3\r\n:1\r\n$9\r\nfo:r3none\r\n:0\r\n"
        r3 = redis.Redis(port=proxy.port, protocol=3)
        assert r3.pubsub_numsub("fo:r3", "fo:r3none") == [(b"fo:r3", 1), (b"fo:r3none", 0)]
        assert r3.pubsub_channels("fo:r3*") == [b"fo:r3"]
        r3.close()
    finally:
        sub.close()


def test_randomkey_draws_from_every_master(r, cluster):
    """As on one Redis, every key can come up: not always the first master's."""
    from clusterhelp import keys_per_master, owner_of
    keys = [ks[0] for ks in keys_per_master(cluster, "fo:rk", 1).values()]
    r.mset({k: 1 for k in keys})
    owners = set()
    for _ in range(100):
        owners.add(owner_of(cluster, r.randomkey().decode()))
        if len(owners) == len(keys):
            break
    assert len(owners) == len(keys)
    r.delete(*keys)
