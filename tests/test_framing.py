"""The reply framer against a reference no one here wrote (hiredis), for any
size and any split of the stream.

Random RESP2/RESP3 streams are generated with the byte boundary of every
top-level reply known.  Fed to the framer in random pieces (1 byte to past
every buffer in the code: the node link reads 64 KiB), the framer must
  - return exactly those replies, and
  - return each one as soon as its last byte was fed (never wait for more),
while hiredis, parsing the whole stream at once, must find the same number of
replies and parse each framed piece alone to the same value with nothing left
over.  Seeded, so a failure repeats.
"""
import bisect
import random

import hiredis
import pytest

from geproxy.framer import Framer, elements, split
from geproxy.resp import ProtocolError

KIB, MIB = 1024, 1024 * 1024


def gen_value(rng, depth, big, resp3, attrs=True):
    """One reply's bytes; `big` lets sizes go past the buffers."""
    kinds = ["+", "-", ":", "$", "$", "$null", "*", "*null"]
    if resp3:
        kinds += ["_", ",", "#", "(", "=", "%", "~", ">"]
    if depth > 3:
        kinds = [k for k in kinds if k not in ("*", "%", "~", ">")]
    kind = rng.choice(kinds)
    if kind == "+":
        return b"+%s\r\n" % (b"OK" * rng.randint(0, 20))
    if kind == "-":
        return b"-ERR %s\r\n" % (b"e" * rng.randint(0, 40))
    if kind == ":":
        return b":%d\r\n" % rng.randint(-2 ** 63, 2 ** 63 - 1)
    if kind == "_":
        return b"_\r\n"
    if kind == ",":
        return b",%r\r\n" % rng.uniform(-1e9, 1e9)
    if kind == "#":
        return rng.choice([b"#t\r\n", b"#f\r\n"])
    if kind == "(":
        return b"(%d\r\n" % rng.randint(-10 ** 40, 10 ** 40)
    if kind == "$null":
        return b"$-1\r\n"
    if kind == "*null":
        return b"*-1\r\n"
    if kind in ("$", "="):
        n = rng.choice([0, 1, rng.randint(0, 100), rng.randint(0, 3000)]
                       + ([rng.randint(60 * KIB, 300 * KIB)] if big else []))
        body = bytes([rng.randint(0, 255)]) * n
        if rng.random() < 0.3:
            body = (b"\r\n" * n)[:n]  # payload that looks like protocol
        if kind == "=":
            body = b"txt:" + body
        return b"%s%d\r\n%s\r\n" % (kind.encode(), len(body), body)
    count = rng.choice([0, 1, rng.randint(0, 8)] + ([rng.randint(100, 3000)] if big and depth < 2 else []))
    if kind == "%":
        items = []
        for i in range(count):
            items.append(b"$%d\r\nk%d\r\n" % (len(b"k%d" % i), i))  # hashable keys for hiredis
            items.append(gen_value(rng, depth + 1, big and rng.random() < 0.01, resp3, attrs))
        return b"%%%d\r\n" % count + b"".join(items)
    items = [gen_value(rng, depth + 1, big and rng.random() < 0.01, resp3, attrs) for _ in range(count)]
    return b"%s%d\r\n" % (kind.encode(), count) + b"".join(items)


def gen_stream(rng, count, big=False, resp3=True):
    """[(reply bytes, how many replies hiredis sees in it)]: a top-level
    attribute is its own reply to hiredis, part of the next to the framer."""
    out = []
    for _ in range(count):
        reply = gen_value(rng, 0, big, resp3)
        seen = 1
        if resp3 and rng.random() < 0.05:
            reply = b"|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n" + reply
            seen = 2
        out.append((reply, seen))
    return out


def pieces(rng, data, scale):
    """Cut `data` at random points; sizes from 1 byte to `scale`."""
    pos = 0
    while pos < len(data):
        n = rng.choice([1, rng.randint(1, 16), rng.randint(1, 4 * KIB), rng.randint(1, scale)])
        yield data[pos:pos + n]
        pos += n


def norm(v):
    """hiredis values, comparable: errors by their text."""
    if isinstance(v, Exception):
        return ("error", str(v))
    if isinstance(v, list):
        return [norm(x) for x in v]
    if isinstance(v, dict):
        return {k: norm(x) for k, x in v.items()}
    return v


def check(stream, cuts):
    replies = [r for r, _ in stream]
    data = b"".join(replies)
    ends = []
    total = 0
    for r in replies:
        total += len(r)
        ends.append(total)
    framer = Framer()
    got, fed = [], 0
    for piece in cuts(data):
        got.extend(framer.feed(piece))
        fed += len(piece)
        # every reply whose last byte is in has been handed over, and no other
        assert len(got) == bisect.bisect_right(ends, fed), "framer held back a complete reply"
    assert not framer.pending()
    assert got == replies

    ref = hiredis.Reader()
    ref.feed(data)
    expected = []
    while ref.has_data():  # (not `gets() is False`: RESP3's #f is False too)
        expected.append(norm(ref.gets()))
    assert len(expected) == sum(seen for _, seen in stream)
    i = 0
    for reply, seen in stream:
        alone = hiredis.Reader()
        alone.feed(reply)
        for _ in range(seen):
            v = alone.gets()
            assert norm(v) == expected[i]
            i += 1
        assert not alone.has_data()


@pytest.mark.parametrize("resp3", [False, True])
def test_small_streams_byte_by_byte_and_tiny_pieces(resp3):
    rng = random.Random(1 if resp3 else 2)
    for _ in range(300):
        stream = gen_stream(rng, rng.randint(1, 30), resp3=resp3)
        check(stream, lambda d: pieces(rng, d, 64))
    stream = gen_stream(rng, 40, resp3=resp3)
    check(stream, lambda d: (d[i:i + 1] for i in range(len(d))))


@pytest.mark.parametrize("seed", range(6))
def test_big_streams_random_pieces(seed):
    """Bulks and aggregates past 64 KiB, 128 KiB and 256 KiB, pieces up to 512 KiB."""
    rng = random.Random(100 + seed)
    stream = gen_stream(rng, 40, big=True, resp3=seed % 2 == 0)
    check(stream, lambda d: pieces(rng, d, 512 * KIB))


def test_huge_bulk_and_aggregate():
    """A 64 MiB bulk, a 20 MiB array of 1000-byte values, a 40,000-entry map:
    in random pieces up to 2 MiB, and each one alone in one piece."""
    rng = random.Random(7)
    value = b"v" * 1000
    array = b"*20000\r\n" + b"$1000\r\n" + value + b"\r\n" + (b"$1000\r\n" + value + b"\r\n") * 19999
    mapping = b"%40000\r\n" + b"".join(b"$%d\r\nf%d\r\n:%d\r\n" % (len(b"f%d" % i), i, i) for i in range(40000))
    stream = [(b"+OK\r\n", 1), (b"$%d\r\n" % (64 * MIB) + b"x" * (64 * MIB) + b"\r\n", 1),
              (array, 1), (b":1\r\n", 1), (mapping, 1), (b"$0\r\n\r\n", 1)]
    check(stream, lambda d: pieces(rng, d, 2 * MIB))
    check(stream, lambda d: (r for r, _ in stream))


def test_reply_ending_a_read_is_handed_over_at_once():
    """The bug this framer replaced: an aggregate of unknown size over 64 KiB
    waited for more bytes than it needed."""
    framer = Framer()
    reply = b"*300\r\n" + (b"$1000\r\n" + b"a" * 1000 + b"\r\n") * 300
    assert framer.feed(reply[:65536]) == []
    assert framer.feed(reply[65536:]) == [reply]


def test_nested_attributes_and_blob_errors():
    """Types hiredis does not parse: checked against the generator's boundaries."""
    replies = [b"!21\r\nSYNTAX invalid syntax\r\n",
               b"*2\r\n|1\r\n+ttl\r\n:3600\r\n$1\r\na\r\n!3\r\nERR\r\n",
               b"|1\r\n+a\r\n|1\r\n+b\r\n+c\r\n+d\r\n+e\r\n"]  # an attribute as an attribute value
    data = b"".join(replies)
    for cut in range(1, len(data)):
        framer = Framer()
        assert framer.feed(data[:cut]) + framer.feed(data[cut:]) == replies


def test_garbage_is_a_protocol_error():
    for bad in (b"?what\r\n", b"$abc\r\n", b"*x\r\n", b"%1.5\r\n"):
        with pytest.raises(ProtocolError):
            Framer().feed(bad)


def test_lengths_out_of_range_are_protocol_errors():
    """A count the framer would wait on forever (a negative attribute, -2,
    2**40 elements) is refused at once, as hiredis refuses it."""
    for bad in (b"$-2\r\n", b"*-2\r\n", b"%-3\r\n", b"|-1\r\n+x\r\n", b"|99999999999\r\n",
                b"*4294967296\r\n", b"~99999999999\r\n"):
        with pytest.raises(ProtocolError):
            Framer().feed(bad)
    assert Framer().feed(b"$-1\r\n*-1\r\n%-1\r\n|0\r\n:1\r\n") == [b"$-1\r\n", b"*-1\r\n", b"%-1\r\n",
                                                                       b"|0\r\n:1\r\n"]


def test_split_and_elements():
    reply = b"*3\r\n$1\r\na\r\n*1\r\n:1\r\n_\r\n"
    assert elements(reply) == [b"$1\r\na\r\n", b"*1\r\n:1\r\n", b"_\r\n"]
    assert elements(b"*0\r\n") == [] and elements(b"*-1\r\n") == []
    assert split(b"+a\r\n:1\r\n", 4) == [b":1\r\n"]
    with pytest.raises(ProtocolError):
        split(b"*2\r\n:1\r\n")
