"""MONITOR through the proxy: the commands its clients send, as Redis prints
them, with each client's own address; the commands scripts run, from the
masters; passwords redacted; only for admins."""
import re

import pytest
import redis

from conftest import HOST, RawClient, replies
from geproxy.monitor import quote
from geproxy.resp import command
from opshelp import ask

LINE = re.compile(rb'^\+\d+\.\d{6} \[0 ([^\]]+)\] (.*)\r\n$')


def lines(mon, n):
    out = []
    for _ in range(n):
        raw = mon.recv_until(lambda b: b"\r\n" in b, timeout=5)
        first, _, rest = raw.partition(b"\r\n")
        mon.buf = rest + mon.buf
        m = LINE.match(first + b"\r\n")
        assert m, first
        out.append((m.group(1), m.group(2)))
    return out


@pytest.fixture
def mon(proxy):
    m = RawClient(proxy.port)
    m.send(command("MONITOR"))
    assert m.recv_until(replies(1)) == b"+OK\r\n"
    yield m
    m.close()


def test_commands_with_the_clients_address(proxy, mon):
    c = RawClient(proxy.port)
    assert ask(c, "SET", "mon:k", 'a "quoted"\nvalue\x01') == b"+OK\r\n"
    ask(c, "GET", "mon:k")
    assert ask(c, "NO-SUCH-COMMAND").startswith(b"-ERR unknown command")   # never run: not shown
    assert ask(c, "GET").startswith(b"-ERR wrong number")                  # nor this
    ask(c, "MGET", "mon:k", "mon:other")
    me = ("%s:%d" % c.sock.getsockname()).encode()
    got = lines(mon, 3)
    assert got == [(me, b'"SET" "mon:k" "a \\"quoted\\"\\nvalue\\x01"'), (me, b'"GET" "mon:k"'),
                   (me, b'"MGET" "mon:k" "mon:other"')]
    ask(c, "DEL", "mon:k")
    c.close()


def test_script_lines_come_from_the_node(proxy, mon):
    c = RawClient(proxy.port)
    ask(c, "EVAL", "redis.call('SET', KEYS[1], ARGV[1])", "1", "mon:s", "v")
    got = lines(mon, 2)
    assert got[0][1].startswith(b'"EVAL"')
    assert got[1] == (b"lua", b'"SET" "mon:s" "v"')
    ask(c, "DEL", "mon:s")
    c.close()


def test_passwords_are_redacted(proxy, mon):
    c = RawClient(proxy.port)
    for cmd in (command("AUTH", "secret-one"), command("AUTH", "someone", "secret-two"),
                command("HELLO", "2", "AUTH", "someone", "secret-three")):
        c.send(cmd)
        c.recv_until(lambda b: b"\r\n" in b)
        c.buf = b""
    got = b"\n".join(text for _, text in lines(mon, 3))
    assert b"secret" not in got
    assert got.count(b'"(redacted)"') == 5
    c.close()


def test_reset_stops_monitoring(proxy):
    m = RawClient(proxy.port)
    assert ask(m, "MONITOR") == b"+OK\r\n"
    assert ask(m, "RESET") == b"+RESET\r\n"
    redis.Redis(host=HOST, port=proxy.port).get("mon:after")
    with pytest.raises(TimeoutError):
        m.recv_until(1, timeout=0.5)
    m.close()


def test_quote_is_redis_repr():
    assert quote(b"plain") == b'"plain"'
    assert quote(b'\\"\r\n\t\x07\x08\xff ') == b'"\\\\\\"\\r\\n\\t\\a\\b\\xff "'


def test_monitor_needs_admin(make_proxy):
    p = make_proxy(extra_conf="[Authority]\n[[default]]\nMode = write\n[[ops]]\nPassword = adm\nMode = admin\n")
    c = RawClient(p.port)
    assert ask(c, "MONITOR").startswith(b"-NOPERM")
    assert ask(c, "AUTH", "adm") == b"+OK\r\n"
    assert ask(c, "MONITOR") == b"+OK\r\n"
    c.close()
