"""Key placement in group pools (distribution.py) against references no one here
wrote: C's own atol (libc, through ctypes) and Redis's CLUSTER KEYSLOT."""

import ctypes
import random

import pytest
import redis

from geproxy.distribution import Placement, atol, crc16, tag_part

LIBC = ctypes.CDLL(None)
LIBC.atol.restype = ctypes.c_long
LIBC.atol.argtypes = [ctypes.c_char_p]


def test_atol_is_c_atol():
    rng = random.Random(1)
    samples = [b"", b"0", b"-", b"+", b"-0", b"+12", b"-12", b"12abc", b"abc12", b"007", b"1-2",
               b"9223372036854775807", b"-9223372036854775807"]
    for _ in range(3000):
        n = rng.randint(0, 18)
        samples.append(bytes(rng.choice(b"0123456789+-ab:") for _ in range(n)))
    for s in samples:  # no leading blanks, no overflow: there predixy's atol and C's agree
        assert atol(s) == LIBC.atol(s), s


def test_atol_as_predixy_reads_it():
    """Leading blanks are not skipped; past 64 bits the long wraps."""
    assert atol(b" 12") == 0 and atol(b"\t7") == 0
    assert atol(b"9223372036854775808") == -9223372036854775808
    assert atol(b"18446744073709551617") == 1
    assert atol(b"-9223372036854775809") == 9223372036854775807


def test_crc16_with_braces_is_redis_cluster_keyslot(cluster):
    """With HashTag {} and crc16, the hashed part is the one Redis Cluster hashes."""
    node = redis.Redis(host=cluster.host, port=cluster.ports[0])
    rng = random.Random(2)
    for _ in range(400):
        key = bytes(rng.choice(b"ab{}x:0") for _ in range(rng.randint(0, 10)))
        assert crc16(tag_part(key, (b"{", b"}"))) & 16383 == node.execute_command("CLUSTER", "KEYSLOT", key), key


@pytest.mark.parametrize("key,tag,part", [
    (b"user:{42}:name", "{}", b"42"), (b"user:{}:x", "{}", b"user:{}:x"), (b"a{b", "{}", b"a{b"),
    (b"a[b]c", "[]", b"b"), (b"a{b}c", "", b"a{b}c"), (b"x\"y\"z", '""', b"y"), (b"{}{a}", "{}", b"{}{a}"),
])
def test_hash_tag(key, tag, part):
    t = (tag[0].encode(), tag[1].encode()) if tag else None
    assert tag_part(key, t) == part


def test_modula_places_by_hash():
    p = Placement("atol", "{}", "modula", 3)
    assert [p.group_of(k) for k in (b"0", b"1", b"2", b"3", b"x{5}", b"-1")] == [0, 1, 2, 0, 2, 2]
    c = Placement("crc16", "", "modula", 5)
    for k in (b"a", b"foo", b"{x}y"):
        assert c.group_of(k) == crc16(k) % 5


def test_random_spreads_over_every_group():
    p = Placement("crc16", "{}", "random", 4)
    assert {p.group_of(b"same") for _ in range(400)} == {0, 1, 2, 3}


@pytest.mark.parametrize("args,message", [
    (("md5", "", "modula", 2), "Hash"), (("crc16", "", "ring", 2), "Distribution"),
    (("crc16", "{", "modula", 2), "HashTag"),
])
def test_bad_settings(args, message):
    with pytest.raises(ValueError, match=message):
        Placement(*args)
