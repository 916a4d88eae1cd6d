"""The redirect parser (geproxy/redirect.py): exact MOVED/ASK forms in,
None for everything else, never an exception."""

import pytest

from geproxy import redirect
from geproxy.redirect import Redirect

NODE = "10.0.0.5:7001"


@pytest.mark.parametrize("reply, expected", [
    (b"-MOVED 3999 127.0.0.1:6381\r\n", Redirect(False, 3999, "127.0.0.1:6381")),
    (b"-ASK 3999 127.0.0.1:6381\r\n", Redirect(True, 3999, "127.0.0.1:6381")),
    (b"-MOVED 0 h:1\r\n", Redirect(False, 0, "h:1")),
    (b"-MOVED 16383 redis-3.example.com:65535\r\n", Redirect(False, 16383, "redis-3.example.com:65535")),
    (b"-MOVED 12 [::1]:7000\r\n", Redirect(False, 12, "::1:7000")),          # bracketed IPv6
    (b"-MOVED 12 ::1:7000\r\n", Redirect(False, 12, "::1:7000")),            # bare, as Redis writes it
    (b"-ASK 12 fe80::1%eth0:7000\r\n", Redirect(True, 12, "fe80::1%eth0:7000")),
    (b"-MOVED 5 :7002\r\n", Redirect(False, 5, "10.0.0.5:7002")),            # no endpoint: the answering host
    (b"-ASK 5 :7002\r\n", Redirect(True, 5, "10.0.0.5:7002")),
])
def test_valid_redirects(reply, expected):
    assert redirect.parse(reply, NODE) == expected


def test_empty_host_takes_an_ipv6_node_host():
    assert redirect.parse(b"-MOVED 5 :7002\r\n", "[::1]:7001") == Redirect(False, 5, "::1:7002")
    assert redirect.parse(b"-MOVED 5 :7002\r\n", "::1:7001") == Redirect(False, 5, "::1:7002")


@pytest.mark.parametrize("reply", [
    b"-MOVED\r\n", b"-MOVED \r\n", b"-MOVED 1\r\n", b"-ASK\r\n", b"-ASK 1\r\n",
    b"-MOVED 99999999 h:p\r\n", b"-MOVED 16384 h:1\r\n", b"-MOVED -1 h:1\r\n", b"-MOVED +1 h:1\r\n",
    b"-MOVED abc 127.0.0.1:1\r\n", b"-MOVED 1.5 h:1\r\n",
    b"-ASK 1 nocolon\r\n", b"-MOVED 1 h:\r\n", b"-MOVED 1 h:p\r\n", b"-MOVED 1 h:0\r\n", b"-MOVED 1 h:65536\r\n",
    b"-MOVED 1 h:123456\r\n", b"-MOVED 1 [h]:1\r\n", b"-MOVED 1 h/x:1\r\n", b"-MOVED 1 h\xff:1\r\n",
    b"-MOVED 1 h:1 extra\r\n", b"-MOVEDX 1 h:1\r\n", b"-TRYAGAIN later\r\n", b"-ERR MOVED 1 h:1\r\n",
    b"-\r\n", b"+MOVED 1 h:1\r\n",
])
def test_malformed_redirects_are_none(reply):
    assert redirect.parse(reply, NODE) is None


def test_empty_host_with_no_known_node_is_none():
    assert redirect.parse(b"-MOVED 5 :7002\r\n", "?") is None


@pytest.mark.parametrize("reply, kind", [
    (b"-MOVED 1 h:1\r\n", b"MOVED"), (b"-MOVED\r\n", b"MOVED"), (b"-ASK 1 x\r\n", b"ASK"),
    (b"-TRYAGAIN Multiple keys request during rehashing of slot\r\n", b"TRYAGAIN"),
    (b"-ERR wrong\r\n", None), (b"-MOVEDX 1\r\n", None), (b"-\r\n", None), (b"+MOVED\r\n", None),
    (b"$5\r\nMOVED\r\n", None), (b"-NOSCRIPT No matching script\r\n", None),
])
def test_kind(reply, kind):
    assert redirect.kind(reply) == kind


def test_malformed_reply_names_the_node_and_cuts_the_text():
    long = b"-MOVED " + b"x" * 500 + b"\r\n"
    reply = redirect.malformed(long, "127.0.0.1:7000")
    assert reply.startswith(b"-ERR geproxy: malformed redirect from 127.0.0.1:7000: MOVED xxx")
    assert reply.endswith(b"\r\n") and reply.count(b"\r\n") == 1
    assert len(reply) < 200
    assert redirect.malformed(b"-MOVED 1\r\n", "n:1") == b"-ERR geproxy: malformed redirect from n:1: MOVED 1\r\n"


def test_too_many_names_the_last_redirect():
    assert redirect.too_many(b"-MOVED 1 h:1\r\n") == \
        b"-ERR geproxy: too many cluster redirections (last: MOVED 1 h:1)\r\n"
