"""Nothing hangs, nothing is lost (issue 18): a node that answers oddly
(malformed redirects, bytes that are not RESP, a close mid-reply, silence)
costs the asking client an error reply within ServerTimeout, and the next
request to that node is answered.

The node is a fake (fakenode.py) the proxy is seeded with; it claims every
slot and relays what the proxy asks for its own use to the real cluster.
"""

import time

import pytest

from conftest import RawClient, replies
from fakenode import CLOSE_MID, STALL, FakeNode

SERVER_TIMEOUT = 1          # the test pool's ServerTimeout (conftest POOL_DEFAULTS)
# A stalled node is noticed one ServerTimeout after the request (not before);
# the rest is slack for a busy 2-core machine.
STALL_BOUND = SERVER_TIMEOUT + 3.0
PROMPT = 3.0                # for what needs no timeout at all


def cmd(*args):
    args = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def bulk(v):
    return b"$%d\r\n%s\r\n" % (len(v), v)


MALFORMED = {
    b"m-short": b"-MOVED 1\r\n",
    b"m-bare": b"-MOVED\r\n",
    b"m-range": b"-MOVED 99999999 h:p\r\n",
    b"a-nocolon": b"-ASK 1 nocolon\r\n",
    b"m-abc": b"-MOVED abc 127.0.0.1:1\r\n",
}
BROKEN = {                  # the link cannot go on after these: it is closed and dialled again
    b"bad-type": b"@what\r\n",
    b"huge-attr": b"|99999999999\r\n",
    b"neg-bulk": b"$-7\r\n",
    b"close-mid": CLOSE_MID,
}


@pytest.fixture
def fake(cluster):
    nodes = []

    def make(script=None):
        nodes.append(FakeNode(cluster.addrs[0], script))
        return nodes[-1]
    yield make
    for n in nodes:
        n.close()


@pytest.fixture
def faked(fake, make_proxy):
    """A fake node with the whole script, and a proxy seeded with it alone."""
    node = fake({**MALFORMED, **BROKEN, b"stall": STALL})
    proxy = make_proxy(pool={"Servers": [node.addr], "ServerFailureLimit": 100})
    return node, proxy


def ask(client, data, n, timeout):
    """Send, and the n replies with how long they took."""
    t0 = time.monotonic()
    client.send(data)
    out = client.recv_until(replies(n), timeout=timeout)
    return out, time.monotonic() - t0


def split(buf, n):
    from conftest import resp_end
    out, pos = [], 0
    for _ in range(n):
        end = resp_end(buf, pos)
        out.append(buf[pos:end])
        pos = end
    return out


@pytest.mark.parametrize("key", sorted(MALFORMED))
def test_malformed_redirect_is_the_askers_error_and_the_link_goes_on(faked, key):
    node, proxy = faked
    c = RawClient(proxy.port, timeout=10)
    try:
        c.send(cmd("GET", "warm"))
        assert c.recv_until(replies(1), timeout=10) == bulk(node.value(b"warm"))
        accepted = node.accepted
        # the odd reply and a request behind it on the same link, in one write
        out, took = ask(c, cmd("GET", key) + cmd("GET", "after"), 2, PROMPT + 5)
        bad, after = split(out, 2)
        text = MALFORMED[key][1:-2]
        assert bad == b"-ERR geproxy: malformed redirect from %s: %s\r\n" % (node.addr.encode(), text)
        assert after == bulk(node.value(b"after"))      # the link was not lost: the next reply is right
        assert took < PROMPT
        assert node.accepted == accepted                # nor dialled again
    finally:
        c.close()


@pytest.mark.parametrize("key", sorted(BROKEN) + ["stall"])
def test_broken_reply_fails_what_the_link_held_and_the_next_request_is_answered(faked, key):
    node, proxy = faked
    c = RawClient(proxy.port, timeout=10)
    try:
        c.send(cmd("GET", "warm"))
        assert c.recv_until(replies(1), timeout=10) == bulk(node.value(b"warm"))
        out, took = ask(c, cmd("GET", key) + cmd("GET", "behind"), 2, STALL_BOUND + 5)
        bad, behind = split(out, 2)
        prefix = b"-ERR geproxy: server %s failed: " % node.addr.encode()
        assert bad.startswith(prefix), bad
        assert behind.startswith(prefix), behind        # held on the same link: answered, not lost
        assert took < (STALL_BOUND if key == "stall" else PROMPT)
        if key == "stall":
            assert took >= 0.95 * SERVER_TIMEOUT, took      # not given up early either
        assert (b"ServerTimeout" in bad) == (key == "stall")     # the others are refused at once
        # the link dials again for the next request, which is answered
        out, took = ask(c, cmd("GET", "next"), 1, 10)
        assert out == bulk(node.value(b"next"))
        assert took < PROMPT
        assert b"internal error" not in proxy.log().encode()
    finally:
        c.close()


def test_redirects_of_every_valid_form_are_followed(fake, make_proxy):
    """ASK to `:port` (no endpoint: the answering node's host) and to a
    hostname, MOVED to the bare address: each reaches the other node."""
    other = fake()
    node = fake({b"ask-empty": b"-ASK 5 :%d\r\n" % other.port,
                 b"ask-name": b"-ASK 5 localhost:%d\r\n" % other.port})
    proxy = make_proxy(pool={"Servers": [node.addr]})
    c = RawClient(proxy.port, timeout=10)
    try:
        for key in (b"ask-empty", b"ask-name"):
            c.send(cmd("GET", key))
            assert c.recv_until(replies(1), timeout=10) == bulk(other.value(key))
    finally:
        c.close()


def test_blocking_command_gets_malformed_redirect_as_error(faked):
    node, proxy = faked
    c = RawClient(proxy.port, timeout=10)
    try:
        out, took = ask(c, cmd("BLPOP", "m-short", 0), 1, 10)
        assert out == b"-ERR geproxy: malformed redirect from %s: MOVED 1\r\n" % node.addr.encode()
        out, took = ask(c, cmd("BLPOP", "close-mid", 0), 1, 10)
        assert out.startswith(b"-ERR geproxy: server %s failed: " % node.addr.encode()), out
        out, took = ask(c, cmd("BLPOP", "fine", 0), 1, 10)
        assert out == b"*2\r\n$4\r\nfine\r\n" + bulk(node.value(b"fine"))
        assert took < PROMPT
    finally:
        c.close()


def test_transaction_gets_malformed_redirect_as_error(faked):
    node, proxy = faked
    c = RawClient(proxy.port, timeout=10)
    try:
        out, _ = ask(c, cmd("MULTI") + cmd("SET", "m-abc", "v") + cmd("EXEC"), 3, 10)
        assert split(out, 3)[2] == b"-ERR geproxy: malformed redirect from %s: MOVED abc 127.0.0.1:1\r\n" \
            % node.addr.encode()
        out, _ = ask(c, cmd("MULTI") + cmd("SET", "fine", "v") + cmd("EXEC"), 3, 10)
        assert split(out, 3) == [b"+OK\r\n", b"+QUEUED\r\n", b"*1\r\n+OK\r\n"]
    finally:
        c.close()


# -- in-process: a node link of ours against the fake node, for our own bugs --

class Owner:
    """What a request hands its reply to (a session, in the proxy)."""
    via = 2

    def __init__(self, sender=None):
        self.sender = sender
        self.calls = 0

    def request_done(self):
        self.calls += 1


class RaisingSender:
    """A layer above that raises on a redirect: a bug, for this request only."""

    def redirect(self, req, reply, node):
        raise RuntimeError("bug in redirect")


class Cfg:
    ServerTimeout = 1.0
    KeepAlive = 0
    User = Password = ""
    ServerFailureLimit = 100
    ServerRetryTimeout = 1


def settle(reqs, timeout=5.0):
    import gevent
    deadline = time.monotonic() + timeout
    while any(r.reply is None for r in reqs) and time.monotonic() < deadline:
        gevent.sleep(0.01)
    return [r.reply for r in reqs]


@pytest.fixture
def link(fake):
    from geproxy.server import Server
    node = fake({b"valid-moved": b"-MOVED 5 127.0.0.1:1\r\n"})
    server = Server(node.addr, Cfg, None)
    yield node, server, server.link(2)
    server.close()


def test_exception_handing_one_reply_fails_that_request_only(link):
    from geproxy.nodelink import READY
    from geproxy.request import Request
    node, server, lk = link
    first = Request(Owner(), cmd("GET", "first"), 0, 2)
    lk.send(first)
    assert settle([first]) == [bulk(node.value(b"first"))]
    sock = lk.sock
    bad = Request(Owner(RaisingSender()), cmd("GET", "valid-moved"), 0, 2)
    good = Request(Owner(), cmd("GET", "good"), 0, 2)
    lk.send(bad)
    lk.send(good)
    got = settle([bad, good])
    assert got[0].startswith(b"-ERR geproxy: internal error on the reply from %s" % node.addr.encode())
    assert got[1] == bulk(node.value(b"good"))
    assert bad.owner.calls == 1 and good.owner.calls == 1     # each answered exactly once
    assert lk.state == READY and lk.sock is sock               # the link went on


def test_reader_bug_answers_what_it_held_and_the_link_dials_again(link, monkeypatch):
    from geproxy import nodelink
    from geproxy.framer import Framer
    from geproxy.request import Request
    node, server, lk = link

    class BuggyFramer(Framer):
        def feed(self, data):
            if b"boom" in data:
                raise KeyError("boom")
            return Framer.feed(self, data)
    monkeypatch.setattr(nodelink, "Framer", BuggyFramer)
    held = [Request(Owner(), cmd("GET", key), 0, 2) for key in ("boom", "x", "y")]
    for r in held:
        lk.send(r)
    got = settle(held)
    assert all(r is not None and r.startswith(b"-ERR geproxy: server %s failed: internal error (KeyError"
                                              % node.addr.encode()) for r in got), got
    assert lk.state == nodelink.IDLE and lk.sock is None
    monkeypatch.setattr(nodelink, "Framer", Framer)
    accepted = node.accepted
    after = Request(Owner(), cmd("GET", "after"), 0, 2)
    lk.send(after)
    assert settle([after]) == [bulk(node.value(b"after"))]
    assert node.accepted == accepted + 1                       # on a new connection
