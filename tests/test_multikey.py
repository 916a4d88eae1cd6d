"""Multi-key commands whose keys span slots (MGET, MSET, DEL, UNLINK, EXISTS,
TOUCH): split per slot, merged back in the client's key order, as one Redis
would answer."""

import random

import pytest
import redis

from clusterhelp import calls, keys_per_master, owner_of
from conftest import replies
from geproxy.resp import command
from geproxy.slots import key_slot


def spread(cluster, prefix, n=3):
    """Keys of distinct slots, n per master, interleaved master by master."""
    per = keys_per_master(cluster, prefix, n)
    return [k for group in zip(*per.values()) for k in group]


def test_mget_values_in_client_order_with_nils(r, cluster):
    keys = spread(cluster, "mk:mget")
    assert len({owner_of(cluster, k) for k in keys}) == 3
    present = keys[::2]
    for k in present:
        r.set(k, "v-" + k)
    r.delete(*keys[1::2])
    rnd = random.Random(3)
    for _ in range(5):
        order = keys[:] + [keys[0], keys[1]]  # duplicates too
        rnd.shuffle(order)
        expected = [("v-" + k).encode() if k in present else None for k in order]
        assert r.mget(order) == expected


def test_mget_resp3(r3, cluster, proxy, raw):
    keys = spread(cluster, "mk:mget3", 2)
    r3.set(keys[0], "a")
    r3.set(keys[3], "d")
    r3.delete(keys[1], keys[2], keys[4], keys[5])
    assert r3.mget(keys) == [b"a", None, None, b"d", None, None]
    c = raw(proxy.port)
    c.send(command("HELLO", "3"))
    c.recv_until(replies(1))
    c.send(command("MGET", keys[3], keys[1], keys[0]))
    assert c.recv_until(replies(1)) == b"*3\r\n$1\r\nd\r\n_\r\n$1\r\na\r\n"


def test_mget_resp2_wire(proxy, raw, cluster, r):
    keys = spread(cluster, "mk:wire", 1)
    r.set(keys[0], "x")
    r.delete(keys[1])
    r.set(keys[2], "")
    c = raw(proxy.port)
    c.send(command("MGET", keys[2], keys[1], keys[0]))
    assert c.recv_until(replies(1)) == b"*3\r\n$0\r\n\r\n$-1\r\n$1\r\nx\r\n"


def test_mget_non_string_is_nil_and_many_keys(r):
    r.delete("mk:list")
    r.rpush("mk:list", "a")
    r.set("mk:str", "s")
    assert r.mget(["mk:str", "mk:list", "mk:str"]) == [b"s", None, b"s"]
    keys = ["mk:many:%d" % i for i in range(2000)]
    assert len({key_slot(k.encode()) for k in keys}) > 1500
    assert r.mset({k: i for i, k in enumerate(keys)}) is True
    assert r.mget(keys) == [str(i).encode() for i in range(2000)]
    assert r.delete(*keys) == 2000
    assert r.exists(*keys) == 0


def test_mset_lands_on_each_owner(r, cluster):
    keys = spread(cluster, "mk:mset")
    assert r.mset({k: k.upper() for k in keys}) is True
    for k in keys:
        assert cluster.client(owner_of(cluster, k)).get(k) == k.upper().encode()
    # Later pairs win for a key given twice, as in Redis.
    assert r.execute_command("MSET", keys[0], "1", keys[1], "x", keys[0], "2") is True
    assert r.mget(keys[0], keys[1]) == [b"2", b"x"]


def test_del_and_unlink_count_deleted_keys(r, cluster):
    keys = spread(cluster, "mk:del")
    r.mset({k: 1 for k in keys[:6]})
    r.delete(*keys[6:])
    # duplicates are deleted once; missing keys count 0
    assert r.delete(keys[0], keys[0], keys[1], keys[6], keys[2]) == 3
    assert r.exists(keys[0], keys[1], keys[2]) == 0
    assert r.unlink(keys[3], keys[4], keys[4], keys[7], keys[8]) == 2
    assert r.unlink(keys[3], keys[4]) == 0
    assert r.delete(keys[5]) == 1


def test_exists_counts_duplicates_like_redis(r, cluster):
    keys = spread(cluster, "mk:ex")
    r.mset({k: 1 for k in keys[:4]})
    r.delete(*keys[4:])
    assert r.exists(keys[0], keys[0], keys[0]) == 3
    assert r.exists(keys[0], keys[1], keys[0], keys[4], keys[2], keys[5], keys[1]) == 5
    assert r.exists(*keys[4:]) == 0
    # the same on one node directly, for reference
    same = ["{mk:ex}a", "{mk:ex}a", "{mk:ex}b"]
    r.set("{mk:ex}a", 1)
    r.delete("{mk:ex}b")
    assert r.exists(*same) == cluster.client(owner_of(cluster, "{mk:ex}a")).exists(*same) == 2


def test_touch_across_slots(r, cluster):
    keys = spread(cluster, "mk:touch")
    r.mset({k: 1 for k in keys[:5]})
    r.delete(*keys[5:])
    assert r.touch(*keys) == 5
    assert r.touch(keys[0], keys[0], keys[8]) == 2


def test_one_slot_stays_one_command(r, cluster):
    masters = cluster.masters()
    tagged = ["{mk:one}%d" % i for i in range(10)]
    r.mset({k: 1 for k in tagged})
    home = owner_of(cluster, tagged[0])
    before = {p: calls(cluster, p, "mget") for p in masters}
    assert r.mget(tagged) == [b"1"] * 10
    after = {p: calls(cluster, p, "mget") for p in masters}
    assert {p: after[p] - before[p] for p in masters} == {p: int(p == home) for p in masters}
    # three slots, one per master: one command per master, each with its own key
    # (a slot with one key gets the one-key form: GET, SET)
    keys = spread(cluster, "mk:one3", 1)
    r.mset({k: 2 for k in keys})

    def reads(p):
        return calls(cluster, p, "mget") + calls(cluster, p, "get")

    def writes(p):
        return calls(cluster, p, "mset") + calls(cluster, p, "set")
    before = {p: reads(p) for p in masters}
    mset_before = {p: writes(p) for p in masters}
    assert r.mget(keys) == [b"2"] * 3
    assert r.mset({k: 3 for k in keys})
    assert {p: reads(p) - before[p] for p in masters} == {p: 1 for p in masters}
    assert {p: writes(p) - mset_before[p] for p in masters} == {p: 1 for p in masters}
    # two keys in one slot and one elsewhere: the slot's keys stay one MGET
    pair = ["{mk:two}a", "{mk:two}b"]
    r.mset({pair[0]: "x", pair[1]: "y"})
    home = owner_of(cluster, pair[0])
    other = [k for k in keys if owner_of(cluster, k) != home][0]
    before = calls(cluster, home, "mget")
    assert r.mget([pair[0], other, pair[1]]) == [b"x", b"3", b"y"]
    assert calls(cluster, home, "mget") == before + 1


def test_client_pipeline_of_mixed_commands_keeps_order(r, cluster):
    keys = spread(cluster, "mk:pipe", 2)
    r.delete(*keys)
    p = r.pipeline(transaction=False)
    p.set(keys[0], "a")
    p.mset({keys[1]: "b", keys[2]: "c", keys[3]: "d"})
    p.mget(keys)
    p.exists(*keys, keys[0])
    p.incr(keys[4])
    p.delete(keys[0], keys[1], keys[5])
    p.get(keys[0])
    p.mget(keys[3], keys[0], keys[4])
    p.touch(*keys)
    p.unlink(*keys)
    p.mget(keys[:3])
    assert p.execute() == [
        True, True, [b"a", b"b", b"c", b"d", None, None], 5, 1, 2, None,
        [b"d", None, b"1"], 3, 3, [None, None, None]]


def test_raw_pipeline_many_split_commands(proxy, raw, cluster):
    keys = spread(cluster, "mk:rawpipe", 2)
    c = raw(proxy.port)
    out, expect = [], []
    for i in range(200):
        k1, k2 = keys[i % 6], keys[(i + 1) % 6]
        out.append(command("MSET", k1, "%d" % i, k2, "%d" % (i + 1)))
        out.append(command("MGET", k2, k1))
        out.append(command("EXISTS", k1, k2, k1))
        expect.append(b"+OK\r\n*2\r\n$%d\r\n%d\r\n$%d\r\n%d\r\n:3\r\n" % (
            len(str(i + 1)), i + 1, len(str(i)), i))
    c.send(b"".join(out))
    assert c.recv_until(replies(600), timeout=10) == b"".join(expect)


def test_msetnx_across_slots_is_crossslot(r, cluster):
    keys = spread(cluster, "mk:nx", 1)
    r.delete(*keys)
    with pytest.raises(redis.ResponseError, match="^Keys in request don't hash to the same slot"):
        r.msetnx({k: 1 for k in keys})
    assert r.exists(*keys) == 0
    r.delete("{mk:nx}a", "{mk:nx}b")
    assert r.msetnx({"{mk:nx}a": 1, "{mk:nx}b": 2}) is True
    assert r.msetnx({"{mk:nx}a": 9, "{mk:nx}c": 9}) is False
    assert r.mget("{mk:nx}a", "{mk:nx}b", "{mk:nx}c") == [b"1", b"2", None]


@pytest.mark.parametrize("args", [
    ["mk:odd:a", "1", "mk:odd:b"],                  # keys of different slots
    ["{mk:odd}a", "1", "{mk:odd}b"],                # one slot
    ["mk:odd:a", "1", "mk:odd:b", "2", "mk:odd:c"],
])
def test_mset_odd_number_of_args(r, args):
    with pytest.raises(redis.ResponseError, match="wrong number of arguments for 'mset' command"):
        r.execute_command("MSET", *args)


def test_arity_errors_of_split_commands(r):
    for name in ("MGET", "DEL", "UNLINK", "EXISTS", "TOUCH", "MSET"):
        with pytest.raises(redis.ResponseError, match="wrong number of arguments for '%s'" % name.lower()):
            r.execute_command(name)


def test_mget_across_slots_gives_nil_for_other_types(r, r3, cluster):
    """A slot with one key is asked with GET, whose WRONGTYPE must become MGET's nil."""
    keys = spread(cluster, "mk:type", 1)
    r.delete(*keys)
    r.set(keys[0], "s")
    r.rpush(keys[1], "l")
    for c in (r, r3):
        assert c.mget(keys) == [b"s", None, None]
    r.delete(*keys)
