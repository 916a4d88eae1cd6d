"""The command table: key positions from Redis 7 key specs (and the legacy
first/last/step), kinds from our overrides."""

from geproxy.commands import CommandTable


def index_range(index, lastkey=0, step=1, limit=0):
    return [b"flags", [b"RO"], b"begin_search", [b"type", b"index", b"spec", [b"index", index]],
            b"find_keys", [b"type", b"range", b"spec", [b"lastkey", lastkey, b"keystep", step, b"limit", limit]]]


def keyword_range(keyword, startfrom, lastkey, step, limit):
    return [b"flags", [b"RO"], b"begin_search",
            [b"type", b"keyword", b"spec", [b"keyword", keyword, b"startfrom", startfrom]],
            b"find_keys", [b"type", b"range", b"spec", [b"lastkey", lastkey, b"keystep", step, b"limit", limit]]]


def index_keynum(index, numidx=0, first=1, step=1):
    return [b"flags", [b"RW"], b"begin_search", [b"type", b"index", b"spec", [b"index", index]],
            b"find_keys", [b"type", b"keynum", b"spec", [b"keynumidx", numidx, b"firstkey", first, b"keystep", step]]]


UNKNOWN_STORE = [b"notes", b"For the optional STORE keyword. It is marked 'unknown'", b"flags", [b"OW"],
                 b"begin_search", [b"type", b"unknown", b"spec", []], b"find_keys", [b"type", b"unknown", b"spec", []]]


def entry(name, arity, flags, specs=(), subs=(), legacy=(0, 0, 0)):
    return [name, arity, flags, legacy[0], legacy[1], legacy[2], [], [], list(specs), list(subs)]


TABLE = CommandTable([
    entry(b"get", 2, [b"readonly", b"fast"], [index_range(1)]),
    entry(b"mset", -3, [b"write"], [index_range(1, -1, 2)]),
    entry(b"xread", -4, [b"readonly", b"blocking", b"movablekeys"], [keyword_range(b"STREAMS", 1, -1, 1, 2)]),
    entry(b"eval", -3, [b"noscript"], [index_keynum(2)]),
    entry(b"zunionstore", -4, [b"write"], [index_range(1), index_keynum(2)]),
    entry(b"blpop", -3, [b"write", b"blocking"], [index_range(1, -2)]),
    entry(b"sort", -2, [b"write"], [index_range(1), UNKNOWN_STORE]),
    entry(b"object", -2, [], subs=[entry(b"object|encoding", 3, [b"readonly"], [index_range(2)]),
                                    entry(b"object|help", 2, [])]),
    entry(b"oldstyle", -2, [b"write"], legacy=(1, -1, 1)),
    entry(b"time", 1, [b"fast"]),
    entry(b"ping", -1, [b"fast"]),
    entry(b"shutdown", -1, [b"admin"]),
    entry(b"subscribe", -2, [b"pubsub"]),
])


def keys(*args):
    args = [a.encode() for a in args]
    cmd = TABLE.get(args[0])
    sub = cmd.lookup(args)
    return (sub or cmd).keys(args)


def test_fixed_index():
    assert keys("GET", "k") == [b"k"]
    assert TABLE.get(b"GET").key_index == 1


def test_range_with_step():
    assert keys("MSET", "a", "1", "b", "2", "c", "3") == [b"a", b"b", b"c"]


def test_keyword_with_limit_finds_stream_keys():
    assert keys("XREAD", "COUNT", "2", "STREAMS", "s1", "s2", "0", "0") == [b"s1", b"s2"]
    assert keys("XREAD", "BLOCK", "0", "STREAMS", "s1", "$") == [b"s1"]
    assert keys("XREAD", "STREAMS") == []


def test_keynum():
    assert keys("EVAL", "return 1", "2", "k1", "k2", "arg") == [b"k1", b"k2"]
    assert keys("EVAL", "return 1", "0") == []
    assert keys("EVAL", "return 1", "notanumber", "k") == []
    assert keys("ZUNIONSTORE", "dst", "2", "a", "b", "WEIGHTS", "1", "2") == [b"dst", b"a", b"b"]


def test_negative_lastkey():
    assert keys("BLPOP", "l1", "l2", "0") == [b"l1", b"l2"]


def test_sort_store_is_a_key():
    assert keys("SORT", "src", "LIMIT", "0", "1", "STORE", "dst") == [b"src", b"dst"]
    assert keys("SORT", "src") == [b"src"]


def test_subcommands():
    assert keys("OBJECT", "ENCODING", "k") == [b"k"]
    assert TABLE.get(b"object").lookup([b"OBJECT", b"HELP"]).kind == "any"
    assert TABLE.get(b"object").lookup([b"OBJECT", b"ENCODING", b"k"]).arity_ok(3)


def test_legacy_first_last_step():
    assert keys("OLDSTYLE", "a", "b") == [b"a", b"b"]


def test_kinds():
    kinds = {name: TABLE.get(name.encode()).kind for name in
             ("get", "mset", "time", "ping", "shutdown", "subscribe", "blpop", "xread")}
    assert kinds == {"get": "key", "mset": "multikey", "time": "any", "ping": "home", "shutdown": "deny",
                     "subscribe": "pubsub", "blpop": "blocking", "xread": "key"}
    xread = TABLE.get(b"xread")
    assert xread.blocks([b"XREAD", b"BLOCK", b"0", b"STREAMS", b"s", b"$"])
    assert not xread.blocks([b"XREAD", b"STREAMS", b"s", b"0"])


def test_arity():
    get = TABLE.get(b"get")
    assert get.arity_ok(2) and not get.arity_ok(1) and not get.arity_ok(3)
    mset = TABLE.get(b"mset")
    assert mset.arity_ok(3) and mset.arity_ok(5) and not mset.arity_ok(2)


def test_lookup_is_case_insensitive_and_unknown_is_none():
    assert TABLE.get(b"GeT").name == "get"
    assert TABLE.get(b"nosuch") is None
