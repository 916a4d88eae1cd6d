"""Every data type through the proxy, as an application sees it: one Redis."""

import pytest
import redis

from conftest import replies
from geproxy.resp import command


def test_strings(r):
    assert r.set("s:1", "v") is True
    assert r.get("s:1") == b"v"
    assert r.append("s:1", "w") == 2
    assert r.incr("s:n") == 1 and r.incrby("s:n", 5) == 6 and r.incrbyfloat("s:n", 0.5) == 6.5
    assert r.getrange("s:1", 0, 0) == b"v"
    assert r.setnx("s:1", "x") is False
    assert r.getdel("s:1") == b"vw" and r.get("s:1") is None
    assert r.set("s:ex", "1", ex=100) and 0 < r.ttl("s:ex") <= 100
    assert r.getex("s:ex", persist=True) == b"1" and r.ttl("s:ex") == -1
    assert r.strlen("s:ex") == 1


def test_keys_commands(r):
    r.set("k:a", "1")
    assert r.exists("k:a") == 1
    assert r.type("k:a") == b"string"
    assert r.expire("k:a", 50) and r.pttl("k:a") > 0
    assert r.persist("k:a")
    assert r.rename("{k}a", "{k}b") if r.set("{k}a", 1) else False
    assert r.get("{k}b") == b"1"
    assert r.object("encoding", "k:a") == b"int"
    assert r.delete("k:a") == 1
    assert r.dump("{k}b") is not None


def test_lists(r):
    assert r.rpush("l", "a", "b", "c") == 3
    assert r.lrange("l", 0, -1) == [b"a", b"b", b"c"]
    assert r.lpop("l") == b"a" and r.rpop("l") == b"c"
    assert r.lpos("l", "b") == 0
    assert r.lmove("{l}x", "{l}y", "LEFT", "RIGHT") is None
    r.rpush("{l}x", 1, 2)
    assert r.lmpop(1, "{l}x", direction="LEFT") == [b"{l}x", [b"1"]]


def test_hashes(r):
    assert r.hset("h", mapping={"a": 1, "b": 2}) == 2
    assert r.hgetall("h") == {b"a": b"1", b"b": b"2"}
    assert r.hincrby("h", "a", 2) == 3
    assert sorted(r.hkeys("h")) == [b"a", b"b"]
    assert r.hrandfield("h") in (b"a", b"b")


def test_sets(r):
    assert r.sadd("{s}1", "a", "b") == 2 and r.sadd("{s}2", "b", "c") == 2
    assert r.sinter("{s}1", "{s}2") == {b"b"}
    assert r.sintercard(2, ["{s}1", "{s}2"]) == 1
    assert r.smismember("{s}1", ["a", "z"]) == [1, 0]


def test_sorted_sets(r):
    assert r.zadd("z", {"a": 1, "b": 2, "c": 3}) == 3
    assert r.zrange("z", 0, -1, withscores=True) == [(b"a", 1.0), (b"b", 2.0), (b"c", 3.0)]
    assert r.zrangebyscore("z", 2, 3) == [b"b", b"c"]
    assert r.zpopmin("z") == [(b"a", 1.0)]
    assert r.zmpop(1, ["z"], max=True) == [b"z", [[b"c", b"3"]]]
    r.zadd("{z}u", {"x": 1})
    assert r.zunionstore("{z}dst", ["{z}u", "{z}u"]) == 1


def test_streams_and_groups(r):
    first = r.xadd("st", {"f": "v"})
    r.xadd("st", {"f": "w"})
    assert r.xlen("st") == 2
    assert r.xrange("st")[0][0] == first
    r.xgroup_create("st", "g", id="0")
    got = r.xreadgroup("g", "c", {"st": ">"}, count=1)
    assert got[0][0] == b"st" and len(got[0][1]) == 1
    assert r.xack("st", "g", got[0][1][0][0]) == 1
    assert r.xinfo_stream("st")["length"] == 2
    assert r.xread({"st": "0"}, count=5)[0][0] == b"st"


def test_xread_with_keys_in_other_slots_is_crossslot(r):
    with pytest.raises(redis.ResponseError, match="hash to the same slot"):
        r.xread({"stA": "0", "stB": "0"})


def test_bitmaps_hyperloglog_geo(r):
    r.setbit("b", 7, 1)
    assert r.bitcount("b") == 1 and r.bitpos("b", 1) == 7
    assert r.pfadd("hll", "a", "b") == 1 and r.pfcount("hll") == 2
    r.geoadd("geo", (13.361389, 38.115556, "Palermo"))
    assert r.geopos("geo", "Palermo")[0] is not None
    r.geoadd("{g}src", (15.087269, 37.502669, "Catania"))
    assert r.execute_command("GEOSEARCHSTORE", "{g}dst", "{g}src", "FROMLONLAT", 15, 37, "BYRADIUS", 200, "km") == 1


def test_redis7_commands(r):
    r.set("e:1", "v")
    assert r.expiretime("e:1") == -1
    r.rpush("{r7}a", "x")
    assert r.execute_command("LCS", "{r7}x", "{r7}y") == b""
    r.execute_command("SET", "e:2", "hello")
    assert r.execute_command("SUBSTR", "e:2", 0, 1) == b"he"


def test_keyless_commands_reach_a_master(r):
    t = r.time()
    assert t[0] > 1_600_000_000
    assert r.command_count() > 200
    assert r.echo("hi") == b"hi" and r.ping() is True


def test_command_info_getkeys_and_docs(proxy, raw):
    c = raw(proxy.port)
    c.send(command("COMMAND", "INFO", "get") + command("COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2")
           + command("COMMAND", "DOCS", "get"))
    got = c.recv_until(replies(3))
    assert got.startswith(b"*1\r\n*10\r\n$3\r\nget\r\n:2\r\n")
    assert b"*2\r\n$1\r\na\r\n$1\r\nb\r\n" in got
    assert b"summary" in got
