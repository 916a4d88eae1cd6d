"""Logging in and out of [Authority] classes, tried by walking around it: RESET
goes back to the default class (or to none: AUTH again), a malformed HELLO
changes nothing, and guessing passwords on one connection is slowed down, then
cut off after AuthFailureLimit failures (a fresh connection with the right
password still works)."""

import os
import tempfile
import time

import pytest

from authhelp import proxy_with, raw_clients
from conftest import RawClient, free_port, render_config, replies
from geproxy.resp import command
from opshelp import ask, fields, info, spawn, wait_for

AUTHORITY = """\
[Authority]
[[default]]
Mode = read
KeyPrefix = pub.
[[ops]]
Password = ops-pw
Mode = admin
[[app]]
Password = app-pw
Mode = write
KeyPrefix = User
"""
SYNTAX = b"-ERR Syntax error in HELLO option 'BOGUS'\r\n"
WRONGPASS = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
TOO_MANY = b"-ERR geproxy: too many failed AUTH attempts on this connection; closing it\r\n"


p = proxy_with(AUTHORITY)


client = raw_clients(15)


def is_admin(c):
    return not ask(c, "CONFIG", "GET", "maxmemory").startswith(b"-")


def test_reset_returns_to_the_default_class(client):
    c = client("ops-pw")
    assert is_admin(c)
    assert ask(c, "RESET") == b"+RESET\r\n"
    assert not is_admin(c)
    assert ask(c, "GET", "User:1").startswith(b"-NOPERM")          # the default class: pub. only
    assert ask(c, "GET", "pub.1") == b"$-1\r\n"
    assert ask(c, "AUTH", "app-pw") == b"+OK\r\n"
    assert ask(c, "SET", "User:r", "1") == b"+OK\r\n"
    c.send(command("MULTI") + command("RESET"))
    assert c.recv_until(replies(2)) == b"+OK\r\n+RESET\r\n"
    assert ask(c, "SET", "User:r", "2").startswith(b"-NOPERM")
    assert ask(client("ops-pw"), "GET", "User:r") == b"$1\r\n1\r\n"


def test_reset_without_a_default_class_means_auth_again(cluster):
    port = free_port()
    conf = os.path.join(tempfile.mkdtemp(prefix="geproxy-test-"), "proxy.conf")
    with open(conf, "w") as f:
        f.write(render_config(cluster, port, extra_conf=AUTHORITY.replace("[[default]]\nMode = read\nKeyPrefix = pub.\n",
                                                                          "")))
    px = spawn(conf, port, ready=lambda r: not r.startswith(b"-CLUSTERDOWN"))
    c = RawClient(port)
    try:
        assert ask(c, "GET", "User:1").startswith(b"-NOAUTH")
        assert ask(c, "AUTH", "app-pw") == b"+OK\r\n"
        assert ask(c, "GET", "User:1").startswith(b"$")
        assert ask(c, "RESET") == b"+RESET\r\n"
        assert ask(c, "GET", "User:1").startswith(b"-NOAUTH")
    finally:
        c.close()
        px.stop()


@pytest.mark.parametrize("args, reply", [
    (["HELLO", "3", "AUTH", "ops", "ops-pw", "BOGUS"], SYNTAX),
    (["HELLO", "3", "AUTH", "default", "ops-pw", "SETNAME"], b"-ERR Syntax error in HELLO option 'SETNAME'\r\n"),
    (["HELLO", "3", "AUTH", "ops", "wrong", "BOGUS"], SYNTAX),
    (["HELLO", "3", "AUTH", "ops", "ops-pw", "AUTH"], b"-ERR Syntax error in HELLO option 'AUTH'\r\n"),
    (["HELLO", "3", "AUTH", "ops", "ops-pw", "SETNAME", "a b"],
     b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n"),
    (["HELLO", "x", "AUTH", "ops", "ops-pw"], b"-ERR Protocol version is not an integer or out of range\r\n"),
    (["HELLO", "4", "AUTH", "ops", "ops-pw"], b"-NOPROTO unsupported protocol version\r\n"),
])
def test_a_malformed_hello_changes_nothing(p, client, args, reply):
    before = int(fields(info(p.port, "stats"))["acl_access_denied_auth"])
    c = client()
    assert ask(c, *args) == reply
    assert not is_admin(c)
    assert ask(c, "PING") == b"+PONG\r\n"       # still RESP2
    assert int(fields(info(p.port, "stats"))["acl_access_denied_auth"]) == before
    assert ask(c, "HELLO", "3", "AUTH", "ops", "ops-pw", "SETNAME", "fine").startswith(b"%")
    assert is_admin(c) and ask(c, "CLIENT", "GETNAME") == b"$4\r\nfine\r\n"


def test_password_guessing_on_one_connection_is_slowed_then_cut_off(p, client):
    """The default AuthFailureLimit (10): 2 answered at once, then 0.05 s
    doubling to 1 s, closed at the 10th (about 3.5 s of waiting in all)."""
    before = int(fields(info(p.port, "stats"))["acl_access_denied_auth"])
    c = client()
    started = time.time()
    c.send(b"".join(command("AUTH", "guess-%d" % i) for i in range(2000)))    # a brute-force burst
    assert c.wait_closed(timeout=30)
    took = time.time() - started
    assert took >= 3.0          # the delays are sleeps: a busy machine only makes it longer
    got = c.buf
    assert got.count(WRONGPASS) == 9 and got.endswith(TOO_MANY), got[-300:]
    assert int(fields(info(p.port, "stats"))["acl_access_denied_auth"]) == before + 10
    assert wait_for(lambda: "too many failed AUTH" in p.log())
    d = client("ops-pw")                # the right password on a fresh connection works
    assert is_admin(d)


def test_a_success_does_not_forgive_earlier_failures(p, client):
    ops = client("ops-pw")
    assert ask(ops, "CONFIG", "SET", "AuthFailureLimit", "3") == b"+OK\r\n"
    try:
        c = client()
        assert ask(c, "AUTH", "nope") == WRONGPASS
        assert ask(c, "AUTH", "app-pw") == b"+OK\r\n"
        assert ask(c, "AUTH", "nope") == WRONGPASS
        assert ask(c, "AUTH", "nope") == TOO_MANY
        assert c.wait_closed()
    finally:
        assert ask(ops, "CONFIG", "SET", "AuthFailureLimit", "10") == b"+OK\r\n"


def test_no_limit_still_slows_guessing(p, client):
    ops = client("ops-pw")
    assert ask(ops, "CONFIG", "SET", "AuthFailureLimit", "0") == b"+OK\r\n"
    try:
        c = client()
        started = time.time()
        for _ in range(6):
            assert ask(c, "AUTH", "nope", timeout=15) == WRONGPASS
        assert time.time() - started >= 0.7      # 0.05 + 0.1 + 0.2 + 0.4
        assert ask(c, "PING") == b"+PONG\r\n"    # never closed
    finally:
        assert ask(ops, "CONFIG", "SET", "AuthFailureLimit", "10") == b"+OK\r\n"
