"""Which group a key belongs to, in a pool of groups (SentinelServerPool,
StandaloneServerPool): predixy's Hash, HashTag and Distribution.

    group = Hash(the key, or the part of it between HashTag's two characters) % groups

The same configuration places a key in the same group as predixy does, so a
deployment can move from predixy to geproxy (or back) without moving data.
`random` distribution sends each command to any group, as predixy does: for
data every group holds alike (caches filled everywhere).
"""

import random
from binascii import crc_hqx


def crc16(data):
    """CRC16/XMODEM, the one Redis Cluster and predixy use (binascii's crc_hqx)."""
    return crc_hqx(data, 0)


def atol(data):
    """predixy's atol: an optional sign, then digits up to the first non-digit
    (no digits: 0), in a 64-bit long that wraps (C's atol would skip leading
    blanks and saturate; predixy's does neither)."""
    i = 1 if data[:1] in (b"+", b"-") else 0
    j = i
    while j < len(data) and 48 <= data[j] <= 57:
        j += 1
    value = int(data[i:j]) if j > i else 0
    if data[:1] == b"-":
        value = -value
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >> 63 else value


HASHES = {"crc16": crc16, "atol": atol}
DISTRIBUTIONS = ("modula", "random")


def tag_part(key, tag):
    """The part of `key` that is hashed: between the first tag[0] and the next
    tag[1] when that part is not empty, else the whole key (predixy's rule;
    with tag "{}" it is Redis Cluster's)."""
    if not tag:
        return key
    start = key.find(tag[0])
    if start < 0:
        return key
    end = key.find(tag[1], start + 1)
    if end <= start + 1:
        return key
    return key[start + 1:end]


class Placement:
    """Key -> group index, for `groups` groups."""

    def __init__(self, hash_name, tag, distribution, groups):
        if hash_name not in HASHES:
            raise ValueError("Hash must be one of %s" % ", ".join(HASHES))
        if distribution not in DISTRIBUTIONS:
            raise ValueError("Distribution must be one of %s" % ", ".join(DISTRIBUTIONS))
        if tag and len(tag) != 2:
            raise ValueError("HashTag must be two characters, e.g. {}")
        self.hash = HASHES[hash_name]
        self.tag = tag.encode() if isinstance(tag, str) else (tag or b"")
        self.tag = (self.tag[:1], self.tag[1:2]) if self.tag else None
        self.random = distribution == "random"
        self.groups = groups

    def group_of(self, key):
        if self.random:
            return random.randrange(self.groups)
        # Python's % is never negative: predixy's C++ would index before its first group for a
        # negative atol hash, which we read as counting from the end (the same group for the same key).
        return self.hash(tag_part(key, self.tag)) % self.groups
