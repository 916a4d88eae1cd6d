"""The request parser against Redis itself, on mutated requests (reqfuzz.py).

Redis frames a request its own way (networking.c); whatever the proxy accepts,
it forwards, so the proxy must never accept bytes that Redis would read as
other commands.  Redis is the reference: each case goes to a standalone
redis-server as it is, and again as the commands the proxy's parser took from
it, re-encoded canonically.  The two must answer alike: the same replies when
the parser took everything, a prefix when it refused the rest (it is stricter
than Redis on purpose: LF after CR, CRLF after a bulk, no NUL in an inline line).

Then the same cases go through the proxy, in random pieces, on the node link
that victim clients pipeline on: each hostile client gets exactly the replies
of what the parser took (and a protocol error, then a close, for the rest),
and every victim exactly its own replies.
"""

import os
import random
import socket
import threading
import time

import pytest

from answerhelp import standalone  # noqa: F401 (a fixture)
from conftest import HOST, replies
from geproxy.reqparser import RequestParser
from geproxy.resp import command, error
from reqfuzz import TAG, case, pieces

SEED = int(os.environ.get("GEPROXY_FUZZ_SEED", "1717"))
# The preloaded keys the cases GET and SET; each connection sets them first, so a case's
# replies do not depend on the cases before it.
RESET = command("MSET", *[x for i in range(10) for x in (TAG + b"k%d" % i, b"val-%d" % i)])


def exchange(port: int, chunks: list, timeout: float = 10.0) -> bytes:
    """Send the pieces on a new connection, half-close, and read until the peer closes."""
    s = socket.create_connection((HOST, port), timeout=timeout)
    try:
        try:
            for c in chunks:
                s.sendall(c)
            s.shutdown(socket.SHUT_WR)
        except OSError:  # the peer closed on a protocol error before taking all: read what it said
            pass
        out = []
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                data = s.recv(1 << 20)
            except ConnectionResetError:
                break
            if not data:
                break
            out.append(data)
        else:
            raise TimeoutError("peer did not close; got %r" % b"".join(out)[:300])
        return b"".join(out)
    finally:
        s.close()


def parse(rng: random.Random, data: bytes):
    """What the proxy's parser takes from `data` fed in random pieces: (commands, error)."""
    parser, got = RequestParser(), []
    for piece in pieces(rng, data):
        cmds, err = parser.feed(piece)
        got += [args for args, _ in cmds]
        for args, raw in cmds:
            assert raw == command(*args), "accepted bytes that are not the canonical encoding"
        if err is not None:
            return got, err
    return got, None


def check_case(port: int, rng: random.Random, data: bytes):
    cmds, err = parse(rng, data)
    direct = exchange(port, [RESET + data])
    replay = exchange(port, [RESET] + [command(*args) for args in cmds])
    if err is None:
        assert direct == replay, "Redis read %r otherwise than the parser (%r)" % (data[:300], cmds)
    else:
        assert direct.startswith(replay), "Redis read %r otherwise than the parser (%r, then %s)" % (
            data[:300], cmds, err)
    return err


def test_parser_takes_only_what_redis_reads_the_same_way(standalone):
    rng = random.Random(SEED)
    errors = 0
    n = 2500
    for i in range(n):
        errors += check_case(standalone, rng, case(rng)) is not None
    # the cases are hostile: most must end in a refusal, and not all
    assert n * 0.3 < errors < n * 0.95


def test_big_arguments_past_every_buffer(standalone):
    """Values around 16 KiB (Redis's read size), 64 KiB (the fast path's length table)
    and past 128 KiB, mutated and cut at random."""
    rng = random.Random(SEED + 1)
    for _ in range(150):
        check_case(standalone, rng, case(rng, big=True))


# -- through the proxy, beside victims on the same node link --

class Victim(threading.Thread):
    """Pipelines SET/GET of its own keys in the slot the hostile cases use; counts
    rounds and keeps the first reply that was not its own."""

    def __init__(self, port: int, n: int):
        super().__init__(daemon=True)
        self.port, self.n = port, n
        self.stop = threading.Event()
        self.rounds = 0
        self.wrong = None

    def run(self):
        from conftest import RawClient
        c = RawClient(self.port, timeout=10)
        rng = random.Random(self.n)
        try:
            while not self.stop.is_set() and self.wrong is None:
                vals = [rng.randbytes(rng.randint(0, 3000)) for _ in range(20)]
                keys = [TAG + b"victim%d:%d" % (self.n, i) for i in range(20)]
                req = b"".join(command("SET", k, v) + command("GET", k) for k, v in zip(keys, vals))
                c.send(req)
                want = b"".join(b"+OK\r\n$%d\r\n%s\r\n" % (len(v), v) for v in vals)
                got = c.recv_until(replies(40), timeout=10)
                if got != want:
                    self.wrong = got[:300]
                self.rounds += 1
        except Exception as e:  # a victim that lost its connection is a failed victim
            self.wrong = repr(e)
        finally:
            c.close()


def test_hostile_requests_beside_victims(proxy):
    rng = random.Random(SEED + 2)
    victims = [Victim(proxy.port, n) for n in range(3)]
    for v in victims:
        v.start()
    try:
        for _ in range(400):
            data = case(rng, big=rng.random() < 0.05)
            cmds, err = parse(rng, data)
            hostile = exchange(proxy.port, [RESET[:5], RESET[5:]] + pieces(rng, data))
            want = exchange(proxy.port, [RESET] + [command(*args) for args in cmds])
            if err is not None:
                want += error("ERR Protocol error: %s" % err)
            assert hostile == want, "bytes %r" % data[:300]
            assert all(v.wrong is None for v in victims), [v.wrong for v in victims]
    finally:
        for v in victims:
            v.stop.set()
        for v in victims:
            v.join(20)
    assert all(v.wrong is None for v in victims), [v.wrong for v in victims]
    assert all(v.rounds > 0 for v in victims)


SMUGGLERS = [
    # a header cut at its last CRLF by a lax parser, at its first CR by Redis
    b"*2\r\n$3\r\nGET\r\n$45" + b"\r" * 48 + b"\n" + command("SET", TAG + b"smuggled-crlf", "pwned-crlf") + b"\r\n",
    # lengths Redis reads as a protocol error (it would drop the shared link)
    command("GET", "x").replace(b"$3", b"$03"), command("GET", "x").replace(b"$3", b"$+3"),
    command("GET", "x").replace(b"$3", b"$ 3"), command("GET", "x").replace(b"$3", b"$0_3"),
    command("GET", "x").replace(b"*2", b"*+2"), command("GET", "x").replace(b"*2", b"*02"),
    # non-bulk elements whose sizes add up to a canonical command's
    b"*3\r\n$3\r\nSET\r\n+k\r\n*1\r\n+abc\r\n",
]


@pytest.mark.parametrize("bad", SMUGGLERS)
def test_smuggling_attempts_close_only_the_sender(proxy, raw, bad):
    import redis
    victim = raw(proxy.port)
    hostile = raw(proxy.port)
    victim.send(command("SET", TAG + b"v", "mine") + command("GET", TAG + b"v"))
    hostile.send(command("PING") + bad)
    got = b""
    try:
        got = hostile.recv_until(lambda b: False, 5)
    except ConnectionError as e:
        got = str(e).encode()
    assert b"+PONG\\r\\n-ERR Protocol error: " in got   # the text of the ConnectionError shows what came
    assert victim.recv_until(replies(2)) == b"+OK\r\n$4\r\nmine\r\n"
    victim.send(command("GET", TAG + b"v") * 50)
    assert victim.recv_until(replies(50)) == b"$4\r\nmine\r\n" * 50
    r = redis.Redis(host=HOST, port=proxy.port)
    assert r.exists(TAG + b"smuggled-crlf") == 0
    r.close()
