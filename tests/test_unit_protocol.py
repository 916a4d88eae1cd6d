"""Pure parts: hash slots, the request parser, the reply framer's boundaries (test_framing.py has the rest)."""

import pytest

from geproxy.reqparser import MAX_BULK, RequestParser, split_inline
from geproxy.framer import Framer
from geproxy.resp import ProtocolError, command
from geproxy.slots import key_slot


@pytest.mark.parametrize("key,slot", [
    (b"foo", 12182), (b"123456789", 12739), (b"", 0),
    (b"{user1000}.following", key_slot(b"user1000")),
    (b"{user1000}.followers", key_slot(b"user1000")),
    (b"foo{}{bar}", key_slot(b"foo{}{bar}")),          # empty tag: whole key
    (b"foo{{bar}}zap", key_slot(b"{bar")),             # tag runs to the first '}'
    (b"foo{bar}{zap}", key_slot(b"bar")),              # only the first tag counts
])
def test_key_slot(key, slot):
    assert key_slot(key) == slot
    assert 0 <= key_slot(key) < 16384


def test_key_slot_empty_tag_is_not_a_tag():
    assert key_slot(b"{}abc") != key_slot(b"")


def parse_all(*chunks):
    p = RequestParser()
    out, err = [], None
    for c in chunks:
        cmds, err = p.feed(c)
        out += cmds
        if err:
            break
    return out, err, p


def test_parse_pipeline_keeps_order_and_raw_bytes():
    data = b"".join(command("SET", "k%d" % i, "v%d" % i) for i in range(100))
    out, err, _ = parse_all(data)
    assert err is None
    assert [a for a, _ in out] == [[b"SET", b"k%d" % i, b"v%d" % i] for i in range(100)]
    assert b"".join(raw for _, raw in out) == data


def test_parse_split_at_every_byte():
    data = command("SET", "key", "a\r\nb\x00c") + command("GET", "key")
    p = RequestParser()
    got = []
    for i in range(len(data)):
        cmds, err = p.feed(data[i:i + 1])
        assert err is None
        got += cmds
    assert [a for a, _ in got] == [[b"SET", b"key", b"a\r\nb\x00c"], [b"GET", b"key"]]
    assert p.pending() == 0


@pytest.mark.parametrize("bad,message", [
    (b"*2\r\n$03\r\nGET\r\n$1\r\nk\r\n", "invalid bulk length"),
    (b"*2\r\n$+3\r\nGET\r\n$1\r\nk\r\n", "invalid bulk length"),
    (b"*2\r\n$ 3\r\nGET\r\n$1\r\nk\r\n", "invalid bulk length"),
    (b"*2\r\n$0_3\r\nGET\r\n$1\r\nk\r\n", "invalid bulk length"),
    (b"*2\r\n$3 \r\nGET\r\n$1\r\nk\r\n", "invalid bulk length"),
    (b"*+2\r\n$3\r\nGET\r\n$1\r\nk\r\n", "invalid multibulk length"),
    (b"*02\r\n$3\r\nGET\r\n$1\r\nk\r\n", "invalid multibulk length"),
    (b"*-0\r\n", "invalid multibulk length"),
    (b"*2\r\n$3\r\r\nGET\r\n$1\r\nk\r\n", "expected LF after CR in a length header"),
    (b"*2\r\n$3\rXGET\r\n$1\r\nk\r\n", "expected LF after CR in a length header"),
    (b"*2\r\n$3\r\nGETXY$1\r\nk\r\n", "expected CRLF after a bulk of 3 bytes"),
    (b"*2\r\n$45" + b"\r" * 48 + b"\n" + b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$1\r\ny\r\n\r\n",
     "expected LF after CR in a length header"),
    (b"PING\x00\r\n", "NUL byte in an inline request"),
])
def test_non_canonical_requests_are_refused(bad, message):
    """Redis reads these differently from their look (or not at all): forwarding
    them would let Redis run what the proxy never saw."""
    for chunks in ([bad], [bytes([b]) for b in bad]):
        out, err, _ = parse_all(*chunks)
        assert out == [] and str(err) == message


def test_fast_path_refuses_non_bulk_elements_whose_lengths_add_up():
    """+k is 3 bytes shorter than $1 k and a nested *1 +abc 3 bytes longer than
    $3 abc: the sizes add up, yet the bytes are not canonical."""
    data = b"*3\r\n$3\r\nSET\r\n+k\r\n*1\r\n+abc\r\n"
    out, err, _ = parse_all(data)
    assert out == [] and "expected '$'" in str(err)


def test_accepted_commands_forward_their_canonical_encoding():
    data = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nSET a 'b c'\r\n*1\r\n$4\r\nPING\r\n"
    for chunks in ([data], [data[:7], data[7:20], data[20:]]):
        out, err, _ = parse_all(*chunks)
        assert err is None and len(out) == 3
        assert all(raw == command(*args) for args, raw in out)


def test_inline_commands():
    out, err, _ = parse_all(b"PING\r\nSET a   b\nset \"x y\" 'q\\'r'\r\n\r\n")
    assert err is None
    assert [a for a, _ in out] == [[b"PING"], [b"SET", b"a", b"b"], [b"set", b"x y", b"q'r"]]
    assert out[0][1] == command("PING")


def test_split_inline_escapes():
    assert split_inline(b'"a\\x41\\n" b') == [b"aA\n", b"b"]
    with pytest.raises(ProtocolError):
        split_inline(b'"unterminated')


@pytest.mark.parametrize("data,message", [
    (b"*abc\r\n", "invalid multibulk length"),
    (b"*2\r\n$x\r\n", "invalid bulk length"),
    (b"*1\r\n$-5\r\n", "invalid bulk length"),
    (b"*1\r\n:5\r\n", "expected '$', got ':'"),
    (b"*1\r\n$%d\r\n" % (MAX_BULK + 1), "invalid bulk length"),
    (b"*1\r\n$2147483648\r\n", "invalid bulk length"),
    (b"*99999999999\r\n", "invalid multibulk length"),
])
def test_protocol_errors(data, message):
    out, err, _ = parse_all(data)
    assert out == []
    assert str(err) == message


def test_commands_before_a_protocol_error_are_kept():
    out, err, _ = parse_all(command("PING") + b"*1\r\n$x\r\n")
    assert [a for a, _ in out] == [[b"PING"]]
    assert str(err) == "invalid bulk length"


def test_empty_and_null_arrays_are_ignored():
    out, err, _ = parse_all(b"*0\r\n*-1\r\n" + command("PING"))
    assert err is None and [a for a, _ in out] == [[b"PING"]]


def test_endless_inline_line_is_refused():
    out, err, _ = parse_all(b"x" * 70000)
    assert "too big inline request" in str(err)


@pytest.mark.parametrize("reply", [
    b"+OK\r\n", b"-ERR x\r\n", b":12\r\n", b"$3\r\nabc\r\n", b"$-1\r\n", b"$0\r\n\r\n",
    b"*2\r\n$1\r\na\r\n:1\r\n", b"*-1\r\n", b"*0\r\n", b"*1\r\n*1\r\n*0\r\n",
    b"%1\r\n+a\r\n*2\r\n:1\r\n:2\r\n", b"~2\r\n+a\r\n+b\r\n", b"_\r\n", b",1.5\r\n", b"#t\r\n",
    b"(123\r\n", b"=7\r\ntxt:abc\r\n", b">2\r\n+message\r\n+x\r\n", b"|1\r\n+k\r\n+v\r\n:7\r\n",
    b"!3\r\nerr\r\n", b"$4\r\na\r\nb\r\n",
])
def test_framer_finds_exact_boundaries(reply):
    assert Framer().feed(reply + b"+NEXT\r\n") == [reply, b"+NEXT\r\n"]
    for cut in range(len(reply)):
        framer = Framer()
        assert framer.feed(reply[:cut]) == []
        assert framer.feed(reply[cut:]) == [reply]


def _random_commands(rng, count):
    """Commands of any shape: empty to 300 KiB arguments (past the 64 KiB fast-path
    table and every read size), binary bytes, CRLF inside arguments."""
    out = []
    for _ in range(count):
        args = []
        for _ in range(rng.choice((1, 2, 3, rng.randint(1, 40)))):
            size = rng.choice((0, 1, rng.randint(2, 100), rng.randint(100, 70000),
                               65535, 65536, rng.randint(70000, 300000)))
            args.append(rng.randbytes(size) if size < 1000 else b"\r\n" * (size // 2) + b"x" * (size % 2))
        out.append(args)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_parser_any_split_matches_hiredis(seed):
    """Several clients' parsers fed in turns (they share one hiredis reader), each
    stream cut in random pieces from 1 byte to 400 KiB: every command comes out
    whole, as hiredis reads the same stream, and its raw bytes are the stream's."""
    import random
    import hiredis
    rng = random.Random(seed)
    streams = []
    for _ in range(3):
        cmds = _random_commands(rng, rng.randint(1, 30))
        data = b"".join(command(*a) for a in cmds)
        ref = hiredis.Reader()
        ref.feed(data)
        expected = []
        while (r := ref.gets()) is not False:
            expected.append(r)
        assert expected == cmds
        ends = [0]
        for a in cmds:
            ends.append(ends[-1] + len(command(*a)))
        pieces, pos = [], 0
        while pos < len(data):  # half the cuts at command ends: whole commands take the fast path
            if rng.random() < 0.5:
                end = rng.choice([e for e in ends if e > pos][:3])
            else:
                end = pos + rng.choice((1, rng.randint(1, 16), rng.randint(1, 5000), rng.randint(1, 400000)))
            pieces.append(data[pos:end])
            pos = end
        streams.append((RequestParser(), pieces, expected, data, []))
    while any(s[1] for s in streams):
        parser, pieces, _, _, got = rng.choice([s for s in streams if s[1]])
        cmds, err = parser.feed(pieces.pop(0))
        assert err is None
        got.extend(cmds)
    for parser, _, expected, data, got in streams:
        assert [a for a, _ in got] == expected
        assert b"".join(raw for _, raw in got) == data
        assert parser.pending() == 0
