"""CONFIG GET / SET / REWRITE / RESETSTAT, for the proxy's own settings (from
the same declarations as the file, settings.py; only those marked online can
be SET) and for Redis's, which go to the nodes: GET asks a master, SET,
REWRITE and RESETSTAT go to every node, masters and replicas.

A SET is all or nothing as far as Redis allows: the old values are read from
every node first, and when one node refuses, the nodes already changed get
their old values back.  Settings that would cut the proxy off its nodes are
refused.  Passwords and the like are never shown."""

from fnmatch import fnmatchcase

from . import private
from .config import ConfigError
from .resp import NOT_READY, OK, bulk, command, decode, error, mapping

HIDDEN = frozenset(("password", "user", "sentinelpassword"))
# Names Redis has too: spelled as the proxy spells them (MaxMemory) they are the
# proxy's; any other spelling (maxmemory) is Redis's, as clients and tools mean it.
SHARED = frozenset(("maxmemory", "bind"))
SECRET = ("pass", "auth", "masteruser")   # requirepass, masterauth, tls-key-file-pass, ...: never shown
# Redis settings the proxy will not change: they would cut it off its nodes, or the nodes off each other.
REFUSED = ("requirepass", "masterauth", "masteruser", "port", "tls-*", "bind", "bind-source-addr", "cluster-*",
           "dir", "dbfilename", "appenddirname", "unixsocket*", "protected-mode", "aclfile", "logfile",
           "replicaof", "slaveof", "replica-announce-*", "slave-announce-*", "enable-*-command")


def show(value):
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, tuple):  # LogRotate: (seconds, bytes)
        return " ".join(w for w in (_seconds(value[0]), _bytes(value[1])) if w)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "%g" % value
    return str(value)


def _seconds(n):
    return "" if not n else "%dd" % (n // 86400) if n % 86400 == 0 else "%dh" % (n // 3600) \
        if n % 3600 == 0 else "%dm" % (n // 60)


def _bytes(n):
    return "" if not n else "%dG" % (n >> 30) if n % (1 << 30) == 0 else "%dM" % (n >> 20)


def handle(proxy, proto, args):
    sub = args[1].lower() if len(args) > 1 else b""
    if sub == b"get" and len(args) >= 3:
        return get(proxy, proto, args)
    if sub == b"set" and len(args) >= 4 and len(args) % 2 == 0:
        return set_(proxy, args)
    if sub == b"resetstat" and len(args) == 2:
        reply = _on_every_node(proxy, args)
        proxy.reset_stats()  # after, so that asking the nodes is not counted
        return reply
    if sub == b"rewrite" and len(args) == 2:
        return _on_every_node(proxy, args)
    if sub == b"help":
        return b"*4\r\n" + bulk("CONFIG GET <pattern> [<pattern> ...]") + \
            bulk("CONFIG SET <name> <value> [...] (the proxy's online settings; Redis's on every node)") + \
            bulk("CONFIG RESETSTAT") + bulk("CONFIG REWRITE (every node)")
    return error("ERR unknown subcommand or wrong number of arguments for CONFIG. Try CONFIG HELP.")


def get(proxy, proto, args):
    """The proxy's settings that match, then Redis's (from a master) that the proxy does not own."""
    cfg = proxy.cfg
    asked = [a.decode("utf-8", "replace") for a in args[2:]]
    patterns = [p.lower() for p in asked]
    pairs = [(bulk(s.name), bulk(show(cfg.get(s.name)))) for key, s in cfg.by_name.items()
             if key not in HIDDEN and any(fnmatchcase(key, p) for p in patterns)
             and (key not in SHARED or any(fnmatchcase(s.name, p) for p in asked))]
    master = proxy.pool.home()   # the same master each time, so GET then SET of a value agrees
    if master is None:
        return mapping(pairs, proto) if pairs else NOT_READY
    reply = private.call_each([master], command("CONFIG", "GET", *args[2:]))[0]
    if reply[:1] == b"-":
        return reply
    value = decode(reply)
    for k, v in (value.items() if isinstance(value, dict) else zip(value[::2], value[1::2])):
        name = k.decode("utf-8", "replace").lower()
        if name in SHARED:  # Redis's, unless asked for only as the proxy spells it
            ours = cfg.by_name[name].name
            if not any(fnmatchcase(name, p.lower()) and p != ours for p in asked):
                continue
        elif name in cfg.by_name:
            continue
        if not any(word in name for word in SECRET):
            pairs.append((bulk(k), bulk(v)))
    return mapping(pairs, proto)


def set_(proxy, args):
    ours, redis = [], []
    for name, value in zip(args[2::2], args[3::2]):
        text = name.decode("utf-8", "replace")
        s = proxy.cfg.by_name.get(text.lower())
        if s is not None and text.lower() in SHARED and text != s.name:
            s = None  # Redis's
        if s is None:
            if any(fnmatchcase(text.lower(), p) for p in REFUSED):
                if _unchanged(proxy, name, value):
                    continue  # set to what it is: nothing to refuse (Redis's suite sets every setting so)
                return error("ERR geproxy does not change '%s' on its nodes: it would cut the proxy or the "
                             "cluster off (change it on each node)" % text)
            redis.append((name, value))
        elif not s.online:
            if value.decode("utf-8", "replace") == show(proxy.cfg.get(s.name)):
                continue
            return error("ERR CONFIG SET failed: '%s' can not be changed online" % s.name)
        else:
            ours.append((s.name, value.decode("utf-8", "replace")))
    try:
        for name, value in ours:  # all valid, or none applied
            proxy.cfg.parse(name, value)
    except ConfigError as e:
        return error("ERR CONFIG SET failed: %s" % e)
    if redis:
        failed = _set_on_nodes(proxy, redis)
        if failed:
            return failed
    for name, value in ours:
        proxy.set_config(name, value)
    return OK


def _unchanged(proxy, name, value):
    """Is `value` what CONFIG GET shows for this setting (the home master's)?"""
    home = proxy.pool.home()
    reply = private.call_each([home], command("CONFIG", "GET", name))[0] if home else b"-"
    if reply[:1] == b"-":
        return False
    got = decode(reply)
    return (list(got.values()) if isinstance(got, dict) else got[1::2]) == [value]


def _nodes(proxy):
    return [s for s in proxy.pool.servers.values() if not s.cluster_fail]


def _set_on_nodes(proxy, pairs):
    """CONFIG SET on every node; on a refusal, the old values back where it was set.
    Returns None, or the error reply naming the node."""
    nodes = _nodes(proxy)
    if not nodes:
        return NOT_READY
    names = [n for n, _ in pairs]
    olds = private.call_each(nodes, command("CONFIG", "GET", *names))
    for server, reply in zip(nodes, olds):
        if reply[:1] == b"-":
            return _named(server, reply)
    replies = private.call_each(nodes, command("CONFIG", "SET", *[x for pair in pairs for x in pair]))
    bad = [(server, reply) for server, reply in zip(nodes, replies) if reply[:1] == b"-"]
    if not bad:
        return None
    if len(bad) == len(nodes) and len(set(replies)) == 1:
        return replies[0]  # every node refused alike: Redis's own error says it all
    done = [(server, old) for server, old, reply in zip(nodes, olds, replies) if reply[:1] != b"-"]
    for server, old in done:
        value = decode(old)
        items = value.items() if isinstance(value, dict) else zip(value[::2], value[1::2])
        private.call_each([server], command("CONFIG", "SET", *[x for kv in items for x in kv]))
    return _named(*bad[0])


def _on_every_node(proxy, args):
    nodes = _nodes(proxy)
    for server, reply in zip(nodes, private.call_each(nodes, command(*args))):
        if reply[:1] == b"-":
            return _named(server, reply)
    return OK


def _named(server, reply):
    """A node's error, saying which node."""
    text = reply[1:-2].decode("utf-8", "replace")
    code, _, rest = text.partition(" ")
    return error("%s %s (node %s)" % (code, rest, server.addr))
