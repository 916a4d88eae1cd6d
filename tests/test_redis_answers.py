"""Answer as Redis answers: the same call through the proxy, to a cluster node
and to a standalone redis-server gets the same reply.  COMMAND in every form,
AUTH and HELLO ... AUTH without passwords, SCAN's cursor over the masters."""

import pytest

from answerhelp import exchange, parsed, standalone  # noqa: F401 (fixture)
from conftest import replies
from opshelp import fields, info
from geproxy.resp import command

# COMMAND's replies that list every command (and subcommand) come in a hash
# table's order, which differs from process to process: they are compared with
# every array taken as a multiset.
LISTINGS = [
    ("COMMAND",), ("command",), ("COMMAND", "INFO"), ("COMMAND", "DOCS"), ("COMMAND", "LIST"),
    ("COMMAND", "LIST", "FILTERBY", "ACLCAT", "read"), ("COMMAND", "LIST", "FILTERBY", "PATTERN", "x*"),
    ("COMMAND", "LIST", "FILTERBY", "MODULE", "nosuch"),
]
EXACT = [
    ("COMMAND", "COUNT"), ("COMMAND", "INFO", "get", "set", "nosuch"), ("COMMAND", "DOCS", "get", "nosuch"),
    ("COMMAND", "GETKEYS", "mset", "a", "1", "b", "2"), ("COMMAND", "GETKEYS", "get"),
    ("COMMAND", "GETKEYS", "eval", "return 1", "2", "a", "b"), ("COMMAND", "GETKEYS", "ping"),
    ("COMMAND", "GETKEYS", "nosuch", "a"), ("COMMAND", "GETKEYS"), ("COMMAND", "GETKEYSANDFLAGS"),
    ("COMMAND", "GETKEYSANDFLAGS", "lmove", "a", "b", "left", "right"), ("COMMAND", "GETKEYSANDFLAGS", "set", "a"),
    ("COMMAND", "COUNT", "x"), ("COMMAND", "LIST", "FILTERBY"), ("COMMAND", "LIST", "FILTERBY", "nosuch", "x"),
    ("COMMAND", "LIST", "junk"), ("COMMAND", "NOSUCH"), ("COMMAND", "nosuch", "a", "b"), ("COMMAND", "HELP"),
    ("command", "help", "x"), ("COMMAND", "INFO", "config|get"), ("COMMAND", "DOCS", "client|kill"),
]


def unordered(value):
    """The value with every array a sorted tuple and every map sorted pairs."""
    if isinstance(value, dict):
        value = [x for kv in value.items() for x in kv]
    if isinstance(value, list):
        return tuple(sorted((unordered(v) for v in value), key=repr))
    return value


@pytest.mark.parametrize("proto", [2, 3])
def test_every_command_form_answers_as_a_node(proxy, cluster, standalone, proto):  # noqa: F811
    node = cluster.masters()[0]
    hello = (("HELLO", "3"),) if proto == 3 else ()
    for args in LISTINGS:
        mine, theirs, alone = (unordered(parsed(exchange(port, *hello, args)[-1])) for port in
                               (proxy.port, node, standalone))
        assert mine == theirs == alone, args
    assert len(parsed(exchange(proxy.port, *hello, ("COMMAND",))[-1])[0]) > 200
    for args in EXACT:
        mine, theirs, alone = (exchange(port, *hello, args)[-1] for port in (proxy.port, node, standalone))
        assert mine == theirs == alone, args


def test_bare_command_in_a_pipeline_and_in_multi(proxy, raw):
    c = raw(proxy.port)
    c.send(command("SET", "cmd:{a}", "1") + command("COMMAND") + command("GET", "cmd:{a}") +
           command("COMMAND", "COUNT") + command("MULTI") + command("COMMAND", "COUNT") +
           command("COMMAND", "GETKEYS", "get", "k") + command("EXEC") + command("DEL", "cmd:{a}"))
    out = parsed(c.recv_until(replies(9)))
    assert out[0] == b"OK" and out[2] == b"1" and len(out[1]) == out[3] > 200
    assert out[4:7] == [b"OK", b"QUEUED", b"QUEUED"] and out[7] == [out[3], [b"k"]] and out[8] == 1


LOGINS = [("AUTH", "x"), ("AUTH", "default", "x"), ("AUTH", "nobody", "x"), ("AUTH", "a", "b", "c"), ("AUTH",),
          ("HELLO", "3", "AUTH", "nobody", "x"), ("HELLO", "2", "AUTH", "default"), ("AUTH", "DEFAULT", "x"),
          ("PING",)]


def hello_shape(data):
    """HELLO's map without what differs between servers (id, version, mode)."""
    value = parsed(data)[0]
    pairs = dict(zip(value[0::2], value[1::2])) if isinstance(value, list) else value
    return {k: v for k, v in pairs.items() if k not in (b"id", b"version", b"mode")}


@pytest.mark.parametrize("classes", ["", "[Authority]\n[[default]]\nMode = admin\n"])
def test_auth_without_passwords_answers_as_redis(make_proxy, standalone, classes):  # noqa: F811
    """No password anywhere: the default user is nopass.  AUTH <password> is
    Redis's error (not a failed login); AUTH default <anything> and HELLO ...
    AUTH default <anything> log in; an unknown user is WRONGPASS."""
    p = make_proxy(extra_conf=classes)
    before = int(fields(info(p.port, "stats"))["acl_access_denied_auth"])
    mine, theirs = exchange(p.port, *LOGINS), exchange(standalone, *LOGINS)
    assert mine == theirs
    assert mine[0] == (b"-ERR AUTH <password> called without any password configured for the default user. "
                       b"Are you sure your configuration is correct?\r\n")
    assert mine[1] == b"+OK\r\n" and mine[2].startswith(b"-WRONGPASS")
    hello = ("HELLO", "3", "AUTH", "default", "any"), ("HELLO", "2", "AUTH", "default", "x", "SETNAME", "n")
    for args in hello:
        assert hello_shape(exchange(p.port, args)[0]) == hello_shape(exchange(standalone, args)[0])
    # counted as Redis counts: the wrong user pairs only, not AUTH <password>
    after = int(fields(info(p.port, "stats"))["acl_access_denied_auth"])
    assert after - before == 3


def test_auth_with_passwords_is_unchanged(make_proxy):
    p = make_proxy(extra_conf="[Authority]\n[[default]]\nMode = read\n[[ops]]\nPassword = ops-pw\nMode = admin\n")
    got = exchange(p.port, ("AUTH", "x"), ("AUTH", "default", "x"), ("AUTH", "ops-pw"), ("AUTH", "default", "ops-pw"),
                   ("HELLO", "2", "AUTH", "default", "x"))
    assert [g[:10] for g in got] == [b"-WRONGPASS", b"-WRONGPASS", b"+OK\r\n", b"+OK\r\n", b"-WRONGPASS"]
