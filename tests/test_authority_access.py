"""[Authority]: read or written, per key, from Redis's key specs.  A write
command that returns a key's value (GETSET, GETDEL, SET ... GET, LPOP, LMOVE's
source) reads it, so a write-only prefix stays unreadable; commands showing
every prefix's data (FUNCTION DUMP, MEMORY STATS, INFO's key counts, SORT's BY
and GET patterns) need a class without prefixes.  After each refusal the
cluster itself is asked that nothing changed."""

import pytest
import redis

from authhelp import CLASSES, not_refused, proxy_with, raw_clients
from conftest import HOST
from opshelp import ask, call
from test_authority_walkaround import build, keyed_commands

AUTHORITY = CLASSES + """\
[[drop]]
Password = drop-pw
Mode = write
ReadKeyPrefix = Pub
WriteKeyPrefix = Drop
"""
DROP = "Drop:{k}"           # writable by the drop class, never readable by it
NOPERM_KEY = "no permissions to access one of the keys"


p = proxy_with(AUTHORITY)


@pytest.fixture(scope="module")
def ops(p):
    c = redis.Redis(host=HOST, port=p.port, password="ops-pw")
    yield c
    c.close()


@pytest.fixture
def drop(p, ops):
    ops.set(DROP, "secret")
    c = redis.Redis(host=HOST, port=p.port, password="drop-pw")
    yield c
    c.close()
    ops.delete(DROP, "Drop:{k}2", "Drop:{k}l", "Drop:{k}l2", "Drop:{k}s", "Drop:{k}z")


client = raw_clients()


def on_node(cluster, key):
    """The key's value read straight from its master (not through the proxy)."""
    for port in cluster.masters():
        try:
            return cluster.client(port).get(key)
        except redis.ResponseError:     # MOVED: another master's
            continue
    raise AssertionError("no master owns %s" % key)


def refused(client, *args):
    with pytest.raises(redis.ResponseError, match="no permissions"):
        client.execute_command(*args)
    return True


def test_value_returning_writes_need_read_rights(cluster, ops, drop):
    assert drop.set(DROP, "mine") is True        # plain writes work
    assert drop.execute_command("LPUSH", "Drop:{k}l", "a", "b") == 2
    ops.set(DROP, "secret")
    for args in (["GET", DROP], ["GETSET", DROP, "x"], ["GETEX", DROP], ["GETDEL", DROP],
                 ["SET", DROP, "x", "GET"], ["SET", DROP, "x", "NX", "GET"], ["GETRANGE", DROP, "0", "-1"],
                 ["INCR", DROP], ["STRLEN", DROP],
                 ["LPOP", "Drop:{k}l"], ["RPOPLPUSH", "Drop:{k}l", "Drop:{k}l2"],
                 ["LMOVE", "Drop:{k}l", "Drop:{k}l2", "LEFT", "LEFT"], ["SMOVE", "Drop:{k}s", "Drop:{k}2", "a"],
                 ["SPOP", "Drop:{k}s"], ["ZPOPMIN", "Drop:{k}z"], ["COPY", DROP, "Drop:{k}2"],
                 ["DUMP", DROP], ["SORT", "Drop:{k}l"]):
        assert refused(drop, *args), args
    assert on_node(cluster, DROP) == b"secret"          # GETSET, GETDEL, SET GET changed nothing
    assert ops.lrange("Drop:{k}l", 0, -1) == [b"b", b"a"] and not ops.exists("Drop:{k}l2", "Drop:{k}2")


def test_every_value_returning_command_of_the_table_needs_read_rights(cluster, p, ops, drop):
    """Every keyed command all of whose key specs say the value is read
    (ACCESS, RO), with the write-only key in every key position, is refused."""
    reading = [c for c in keyed_commands(cluster) if c[0] not in ("set",) and _reads(cluster, c[0])]
    assert len(reading) > 60
    allowed = not_refused(drop, [[DROP if a == "Outside:k" else a for a in build(*c)] for c in reading])
    assert not allowed, allowed[:10]
    assert on_node(cluster, DROP) == b"secret" and ops.type(DROP) == b"string" and ops.ttl(DROP) == -1


def _reads(cluster, name, cache={}):
    """Do all of the command's key specs read the value?"""
    if not cache:
        raw = cluster.client(cluster.masters()[0])
        raw.set_response_callback("COMMAND", lambda r, **kw: r)
        for row in raw.execute_command("COMMAND"):
            specs = []
            for spec in (row[8] if len(row) > 8 else []):
                d = dict(zip(spec[::2], spec[1::2]))
                specs.append({f.decode().upper() if isinstance(f, bytes) else f.upper() for f in d[b"flags"]})
            cache[row[0].decode() if isinstance(row[0], bytes) else row[0]] = specs
    specs = cache.get(name)
    return bool(specs) and all(s & {"ACCESS", "RO"} for s in specs)


def test_reading_one_key_and_writing_another_goes_by_each_key(ops, p):
    app = redis.Redis(host=HOST, port=p.port, password="app-pw")
    try:
        ops.sadd("Stats:{u}a", "x")
        assert app.sunionstore("User:{u}d", "Stats:{u}a") == 1       # Stats read, User written
        assert app.execute_command("COPY", "Stats:{u}a", "User:{u}c") == 1
        assert refused(app, "SUNIONSTORE", "Stats:{u}d", "User:{u}d")     # Stats is not writable
        assert refused(app, "SMOVE", "Stats:{u}a", "User:{u}d", "x")      # the source is written too
        assert refused(app, "SET", "Stats:{u}a", "x", "GET")
        assert ops.smembers("Stats:{u}a") == {b"x"} and not ops.exists("Stats:{u}d")
    finally:
        ops.delete("Stats:{u}a", "User:{u}d", "User:{u}c")
        app.close()


@pytest.mark.parametrize("args, needle", [
    (["FUNCTION", "DUMP"], "FUNCTION DUMP"), (["FUNCTION", "LIST", "WITHCODE"], "WITHCODE"),
    (["FUNCTION", "LIST", "LIBRARYNAME", "x", "withcode"], "WITHCODE"), (["FUNCTION", "STATS"], "FUNCTION STATS"),
    (["MEMORY", "STATS"], "MEMORY STATS"), (["MEMORY", "DOCTOR"], "MEMORY DOCTOR"),
    (["MEMORY", "MALLOC-STATS"], "MEMORY MALLOC-STATS"), (["DBSIZE"], "DBSIZE"),
    (["SORT_RO", "User:{l}", "BY", "Other:*"], "BY option"), (["SORT_RO", "User:{l}", "GET", "Other:*"], "GET option"),
    (["SORT_RO", "User:{l}", "BY", "x", "GET", "#", "GET", "Other:*->f"], "GET option"),
])
def test_whole_keyspace_commands_need_a_class_without_prefixes(p, ops, args, needle):
    library = "#!lua name=adminlib\nredis.register_function('adminfn', function() return 'admin-secret' end)"
    ops.execute_command("FUNCTION", "LOAD", "REPLACE", library)
    try:
        for password in ("app-pw", None):
            c = redis.Redis(host=HOST, port=p.port, password=password, protocol=2)
            with pytest.raises(redis.ResponseError, match=needle):
                c.execute_command(*args)
            c.close()
        assert b"adminlib" in ops.execute_command("FUNCTION", "DUMP")
    finally:
        ops.execute_command("FUNCTION", "DELETE", "adminlib")


def test_function_list_without_code_and_sort_without_patterns_still_work(p, ops):
    app = redis.Redis(host=HOST, port=p.port, password="app-pw", protocol=2)
    try:
        assert isinstance(app.execute_command("FUNCTION", "LIST"), list)
        app.rpush("User:{l}", 3, 1, 2)
        assert app.sort("User:{l}") == [b"1", b"2", b"3"]
        assert app.sort("User:{l}", by="nosort") == [b"3", b"1", b"2"]
    finally:
        ops.delete("User:{l}")


def test_info_shows_key_counts_only_to_a_class_without_prefixes(p, ops, client):
    ops.set("User:info", "x")
    try:
        for password in ("app-pw", None):
            c = client(password)
            for section in ([], ["keyspace"], ["all"], ["everything"], ["default"]):
                text = ask(c, "INFO", *section)
                assert b"db0:" not in text and b"# Keyspace" not in text, section
            assert b"# Stats" in ask(c, "INFO", "stats")
        assert b"db0:keys=" in ask(client("ops-pw"), "INFO", "keyspace")
    finally:
        ops.delete("User:info")


def test_info_keyspace_of_the_default_class_is_empty(p):
    """Before AUTH (the default class has a prefix): INFO keyspace asked directly is empty."""
    assert b"db0:" not in call(p.port, "INFO", "keyspace")
