"""[Authority] tried by walking around it: every keyed command Redis's own
command table lists, scripts and functions, listings, transactions; and failed
AUTH counted and logged.  The class under test may read keys starting with
User or Stats and write keys starting with User; the key it must never reach
is Outside:...  After each attempt the cluster itself is asked whether the
outside key was created or changed."""

import pytest
import redis

from authhelp import CLASSES, not_refused, proxy_with
from conftest import HOST, RawClient
from opshelp import ask, fields, info

AUTHORITY = CLASSES + """\
[[scripter]]
Password = lua-pw
Mode = write
KeyPrefix = User
UnsafeScripts = yes
"""
OUT = "Outside:k"
# containers whose subcommands name keys (COMMAND lists their keys on the subcommands)
SUBCOMMANDS = [["OBJECT", "ENCODING", OUT], ["OBJECT", "FREQ", OUT], ["XINFO", "STREAM", OUT],
               ["XINFO", "GROUPS", OUT], ["MEMORY", "USAGE", OUT], ["XGROUP", "CREATE", OUT, "g", "$", "MKSTREAM"]]


p = proxy_with(AUTHORITY)


@pytest.fixture(scope="module")
def ops(p):
    c = redis.Redis(host=HOST, port=p.port, password="ops-pw")
    c.set(OUT, "secret")
    c.set("User:1", "mine")
    c.set("Stats:1", "stat")
    c.set("pub.1", "public")
    yield c
    c.delete(OUT, "User:1", "Stats:1", "pub.1")
    c.close()


@pytest.fixture
def app(p, ops):
    c = redis.Redis(host=HOST, port=p.port, password="app-pw")
    yield c
    c.close()


def keyed_commands(cluster):
    """(name, arity, first key position, last, step) of every command with keys, from a node's COMMAND."""
    reply = cluster.client(cluster.masters()[0]).execute_command("COMMAND")
    rows = reply.values() if isinstance(reply, dict) else reply
    out = []
    for row in rows:
        if isinstance(row, dict):
            name, arity, first = row["name"], row["arity"], row["first_key_pos"]
            last, step = row["last_key_pos"], row["step_count"]
        else:
            name, arity, _, first, last, step = row[:6]
        name = name.decode() if isinstance(name, bytes) else name
        if first > 0 and "|" not in name:
            out.append((name, int(arity), int(first), int(last), int(step)))
    return sorted(out)


def build(name, arity, first, last, step):
    """A plausible call with the outside key in every key position."""
    n = arity if arity > 0 else max(-arity, first + 1)
    args = [name] + ["0"] * (n - 1)
    last = n - 1 if last < 0 else min(last, n - 1)
    for i in range(first, last + 1, step or 1):
        args[i] = OUT
    return args


def outside_untouched(cluster, p):
    ops = redis.Redis(host=HOST, port=p.port, password="ops-pw")
    try:
        return ops.get(OUT) == b"secret" and ops.type(OUT) == b"string" and ops.ttl(OUT) == -1
    finally:
        ops.close()


def test_every_keyed_command_is_refused_on_an_outside_key(p, cluster, app):
    commands = keyed_commands(cluster)
    assert len(commands) > 100          # Redis 7 has about 150 keyed commands
    allowed = not_refused(app, [build(*c) for c in commands] + SUBCOMMANDS)
    assert not allowed, allowed[:10]
    assert outside_untouched(cluster, p)


def test_inside_keys_still_work(app):
    assert app.get("User:1") == b"mine" and app.get("Stats:1") == b"stat"
    assert app.set("User:2", "x") and app.delete("User:2") == 1
    with pytest.raises(redis.ResponseError, match="no permissions"):
        app.set("Stats:1", "x")     # read prefix only


@pytest.mark.parametrize("call", [
    ["EVAL", "return redis.call('get', 'Outside:k')", "1", "User:1"],
    ["EVAL", "return redis.call('set', '{User:1}x', 'owned')", "1", "User:1"],
    ["EVAL_RO", "return redis.call('get', 'Outside:k')", "0"],
    ["EVALSHA", "a" * 40, "1", "User:1"],
    ["FCALL", "anything", "1", "User:1"],
    ["FCALL_RO", "anything", "0"],
    ["SCRIPT", "LOAD", "return redis.call('get', 'Outside:k')"],
    ["FUNCTION", "LOAD", "#!lua name=x\nredis.register_function('x', function() return 1 end)"],
])
def test_scripts_and_functions_are_refused_to_a_prefixed_class(p, cluster, app, call):
    with pytest.raises(redis.ResponseError, match="UnsafeScripts"):
        app.execute_command(*call)
    assert outside_untouched(cluster, p)


def test_scripts_inside_a_transaction_are_refused_too(p, cluster, app):
    pipe = app.pipeline(transaction=True)
    pipe.get("User:1")
    pipe.eval("return redis.call('get', 'Outside:k')", 1, "User:1")
    with pytest.raises(redis.ResponseError):
        pipe.execute()
    pipe = app.pipeline(transaction=True)
    pipe.set(OUT, "owned")
    with pytest.raises(redis.ResponseError):
        pipe.execute()
    assert outside_untouched(cluster, p)


def test_a_class_that_opts_in_runs_scripts(p, ops):
    c = redis.Redis(host=HOST, port=p.port, password="lua-pw")
    assert c.eval("return redis.call('get', KEYS[1])", 1, "User:1") == b"mine"
    c.close()


def test_listings_show_only_readable_keys(p, ops, app):
    default = redis.Redis(host=HOST, port=p.port)
    assert sorted(app.keys("*")) == sorted(k for k in ops.keys("*") if k.startswith((b"User", b"Stats")))
    assert OUT.encode() not in app.keys("*")
    seen = set(app.scan_iter(match="*", count=1000))
    assert seen and all(k.startswith((b"User", b"Stats")) for k in seen)
    assert b"User:1" in seen and b"Stats:1" in seen
    assert set(default.scan_iter(count=1000)) == {b"pub.1"}
    assert default.keys("*") == [b"pub.1"]
    for _ in range(5):
        k = default.randomkey()
        assert k in (b"pub.1", None)
        k = app.randomkey()
        assert k is None or k.startswith((b"User", b"Stats"))
    with pytest.raises(redis.ResponseError, match="DBSIZE"):
        app.dbsize()
    assert ops.dbsize() >= 4
    default.close()


def test_failed_auth_is_counted_and_logged(p):
    before = int(fields(info(p.port, "stats"))["acl_access_denied_auth"])
    for _ in range(15):     # two on each connection: within AuthFailureLimit, answered at once
        c = RawClient(p.port)
        assert ask(c, "AUTH", "wrong").startswith(b"-WRONGPASS")
        assert ask(c, "AUTH", "wrong").startswith(b"-WRONGPASS")
        c.close()
    c = RawClient(p.port)
    assert ask(c, "HELLO", "3", "AUTH", "default", "wrong-again").startswith(b"-WRONGPASS")
    c.close()
    assert int(fields(info(p.port, "stats"))["acl_access_denied_auth"]) == before + 31
    logged = [line for line in p.log().splitlines() if "failed AUTH" in line]
    assert 1 <= len([line for line in logged if "from 127.0.0.1:" in line]) <= 15   # sampled, with the address
