"""Mutated client requests for the differential tests (test_request_fuzz.py).

Each case starts as a valid pipeline of idempotent, deterministic commands
(SET of a fixed value, GET, ECHO, PING), some of whose values hide RESP
commands of their own, then gets one to three mutations of the kinds that
make a parser disagree with Redis: lengths with signs, spaces, zeros or
underscores, lengths off by a few bytes, stray or missing CR/LF, other bytes
after a bulk, non-bulk elements, NUL bytes, inline lines, random flips.
"""

import random
import re

from geproxy.resp import command

TAG = b"{fz}"      # every key in one slot: one node link, shared with the victims
# A command hidden in a value: mutated lengths may expose it to a parser.
HIDDEN = command("SET", TAG + b"smuggled", "pwned") + command("ECHO", "hidden")


def base_case(rng: random.Random, big: bool = False) -> list:
    """A list of commands (lists of bytes), each valid."""
    out = []
    for _ in range(rng.randint(1, 4)):
        kind = rng.random()
        value = _value(rng, big)
        if kind < 0.3:
            out.append([b"SET", TAG + b"k%d" % rng.randint(0, 9), b"v%d" % rng.randint(0, 9)])
        elif kind < 0.5:
            out.append([b"GET", TAG + b"k%d" % rng.randint(0, 9)])
        elif kind < 0.9:
            out.append([b"ECHO", value])
        else:
            out.append([b"PING"] + ([value] if rng.random() < 0.5 else []))
    return out


def _value(rng, big):
    r = rng.random()
    if r < 0.3:
        return HIDDEN
    if r < 0.4:
        return b"a\r\nb\r\r\n\n" + HIDDEN
    if big and r < 0.6:
        return rng.randbytes(rng.choice((16383, 16384, 16385, 65535, 65536, 65537, 70000, 140000)))
    return rng.randbytes(rng.randint(0, 40))


_HEADER = re.compile(rb"([*$])(-?\d+)\r\n")


def _length_variants(n: bytes) -> list:
    v = int(n)
    return [b"+" + n, b" " + n, n + b" ", b"0" + n, b"0_" + n, n[:1] + b"_" + n[1:], b"-0", b"",
            b"%d" % (v + 1), b"%d" % (v - 1), b"%d" % (v + 3), b"%d" % (v - 3), b"%d" % (v + 48),
            n + b"\r", n + b"\r" * 48, b"%d" % -v if v else b"-1", n + b"\x00", b"\t" + n]


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One mutation of `data`."""
    kind = rng.randrange(9)
    headers = list(_HEADER.finditer(data))
    if kind <= 2 and headers:      # a length written another way, or another length
        m = rng.choice(headers)
        n = rng.choice(_length_variants(m.group(2)))
        return data[:m.start(2)] + n + data[m.end(2):]
    if kind == 3 and headers:      # the line end of a header
        m = rng.choice(headers)
        end = rng.choice((b"\n", b"\r", b"\rX", b"\r\r\n", b"\n\r", b"\r" * 48 + b"\n", b""))
        return data[:m.end(2)] + end + data[m.end():]
    if kind == 4:                  # what follows a bulk
        bulks = [m for m in headers if m.group(1) == b"$" and int(m.group(2)) >= 0]
        if bulks:
            m = rng.choice(bulks)
            end = m.end() + int(m.group(2))
            if end + 2 <= len(data):
                return data[:end] + rng.choice((b"XY", b"\n\r", b"\r\r", b"\n", b"\r\n\r\n")) + data[end + 2:]
    if kind == 5 and headers:      # an element of another type in place of a bulk
        bulks = [m for m in headers if m.group(1) == b"$"]
        if bulks:
            m = rng.choice(bulks)
            repl = rng.choice((b"+", b":", b"*1\r\n$", b"%", b"~", b"_"))
            return data[:m.start()] + repl + data[m.start() + 1:]
    if kind == 6:                  # a stray byte
        i = rng.randint(0, len(data))
        return data[:i] + rng.choice((b"\r", b"\n", b"\x00", b" ", b"*", b"$", b"\r\n")) + data[i:]
    if kind == 7:                  # an inline line in front
        line = rng.choice((b"PING", b"ECHO 'a b'", b'ECHO "x\\x41\\n"', b"GET " + TAG + b"k1", b"PING \x00"))
        return line + rng.choice((b"\r\n", b"\n", b"\r\r\n")) + data
    if not data:
        return data
    i = rng.randrange(len(data))   # a random flip
    return data[:i] + bytes([rng.randrange(256)]) + data[i + 1:]


def case(rng: random.Random, big: bool = False) -> bytes:
    """A pipeline of valid commands with 0 to 3 mutations (0: the canonical control)."""
    data = b"".join(command(*args) for args in base_case(rng, big))
    for _ in range(rng.choice((0, 1, 1, 1, 2, 3))):
        data = mutate(rng, data)
    return data


def pieces(rng: random.Random, data: bytes) -> list:
    """`data` cut at random points, from single bytes to all of it."""
    out, pos = [], 0
    while pos < len(data):
        step = rng.choice((1, rng.randint(1, 8), rng.randint(1, 200), rng.randint(1, 1 << 18)))
        out.append(data[pos:pos + step])
        pos += step
    return out
