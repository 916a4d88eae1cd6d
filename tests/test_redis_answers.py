"""Answer as Redis answers: the same call through the proxy, to a cluster node
and to a standalone redis-server gets the same reply.  COMMAND in every form,
AUTH and HELLO ... AUTH without passwords, SCAN's cursor over the masters."""

import pytest
import redis

from answerhelp import exchange, parsed, standalone  # noqa: F401 (fixture)
from clusterhelp import keys_per_master
from conftest import HOST, RawClient, replies
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


def scan_all(port, proto=2, **kw):
    """A full SCAN walk: (keys seen, in order, with repeats; number of calls)."""
    c = redis.Redis(host=HOST, port=port, protocol=proto)
    seen, calls, cursor = [], 0, 0
    while True:
        cursor, keys = c.scan(cursor, **kw)
        seen += keys
        calls += 1
        if cursor == 0:
            c.close()
            return seen, calls


@pytest.fixture
def empty(proxy, standalone):  # noqa: F811
    """Both keyspaces emptied (the cluster is this process's, tests run one at a time)."""
    for port in (proxy.port, standalone):
        redis.Redis(host=HOST, port=port).flushall()
    yield
    for port in (proxy.port, standalone):
        redis.Redis(host=HOST, port=port).flushall()


def test_scan_of_a_small_keyspace_ends_in_one_call(proxy, cluster, standalone, empty):  # noqa: F811
    ports = (proxy.port, standalone)
    assert [exchange(p, ("SCAN", "0"))[0] for p in ports] == [b"*2\r\n$1\r\n0\r\n*0\r\n"] * 2
    keys = [ks[0] for ks in keys_per_master(cluster, "sw", 1).values()]   # one on each master
    for p in ports:
        c = redis.Redis(host=HOST, port=p)
        c.mset({k: 1 for k in keys[:2]})
        c.rpush(keys[2], 1)
    for p in ports:
        for proto in (2, 3):
            for kw in ({}, {"count": 10}, {"count": 100}, {"match": "sw:*"}, {"_type": "list"}):
                cursor, got = redis.Redis(host=HOST, port=p, protocol=proto).scan(0, **kw)
                want = keys[2:] if kw.get("_type") else keys
                assert cursor == 0 and sorted(got) == sorted(k.encode() for k in want), (p, proto, kw)
    # with COUNT 1 the walk takes several calls, each master entered once
    seen, calls = scan_all(proxy.port, count=1)
    assert sorted(seen) == sorted(k.encode() for k in keys) and calls >= 3
    # the reply keeps its place in a pipeline
    c = RawClient(proxy.port)
    c.send(command("GET", keys[0]) + command("SCAN", "0", "COUNT", "100") + command("LLEN", keys[2]) +
           command("SCAN", "0", "MATCH", "nomatch*") + command("SCAN", "x") + command("PING"))
    out = parsed(c.recv_until(replies(6)))
    c.close()
    assert out[0] == b"1" and out[1][0] == b"0" and sorted(out[1][1]) == sorted(k.encode() for k in keys)
    assert out[2:4] == [1, [b"0", []]] and str(out[4]) == "ERR invalid cursor" and out[5] == b"PONG"


@pytest.mark.parametrize("count", [1, 7, 10, 100, 2000])
def test_a_big_keyspace_walks_every_key(proxy, standalone, empty, count):  # noqa: F811
    keys = {("big:%d" % i).encode() for i in range(1500)}
    for p in (proxy.port, standalone):
        c = redis.Redis(host=HOST, port=p)
        pipe = c.pipeline(transaction=False)
        for k in keys:
            pipe.set(k, 1)
        pipe.execute()
        c.set("other:1", 1)
    (mine, calls), (theirs, _) = scan_all(proxy.port, count=count), scan_all(standalone, count=count)
    assert set(mine) == set(theirs) == keys | {b"other:1"}
    assert len(mine) <= len(keys) + 1 + 10         # at least once; a node's own SCAN may repeat few
    (mine, _), (theirs, _) = scan_all(proxy.port, match="big:1*", count=count), scan_all(standalone, match="big:1*",
                                                                                         count=count)
    assert set(mine) == set(theirs) == {k for k in keys if k.startswith(b"big:1")}
    if count >= 2000:
        assert calls == 1                           # every master in one call, as one Redis does


def test_scan_shows_a_prefixed_class_its_keys_in_one_call(make_proxy, proxy, cluster, empty):
    p = make_proxy(extra_conf="[Authority]\n[[default]]\nMode = read\nKeyPrefix = pub.\n")
    per = list(keys_per_master(cluster, "pub.sc", 2).values())
    c = redis.Redis(host=HOST, port=proxy.port)
    for ks in per:
        c.set(ks[0], 1)
        c.set(ks[1].replace("pub.", "priv."), 1)
    cursor, got = redis.Redis(host=HOST, port=p.port).scan(0)
    assert cursor == 0 and sorted(got) == sorted(ks[0].encode() for ks in per)


def test_scan_reads_the_cursor_as_redis_does(proxy, standalone):  # noqa: F811
    forms = ["", "-1", "+0", "-0", " 1", "1 ", "-", "+", "0x1", "1.5", "18446744073709551615",
             "18446744073709551616", "-18446744073709551615", "-18446744073709551616", "01"]
    for form in forms:
        mine, theirs = (exchange(port, ("SCAN", form, "COUNT", "1"))[0] for port in (proxy.port, standalone))
        assert (mine[:1] == b"-") == (theirs[:1] == b"-"), form
        if mine[:1] == b"-":
            assert mine == theirs == b"-ERR invalid cursor\r\n"
    for opts in (("COUNT", "0"), ("COUNT", "-1"), ("COUNT", "x"), ("COUNT",), ("MATCH",), ("NOSUCH", "1"),
                 ("COUNT", "99999999999999999999")):
        mine, theirs = (exchange(port, ("SCAN", "0") + opts)[0] for port in (proxy.port, standalone))
        assert mine == theirs and mine[:1] == b"-", opts
