"""The command table: routing as data.

What Redis knows about its commands (arity, flags, key positions, Redis 7 key
specs, subcommands) is learned from a backend's COMMAND reply, so every keyed
command of the running Redis version routes without a hand-written list.  On top
of that, OVERRIDES says where the proxy's semantics differ: commands it serves
itself, commands that touch every master, commands that need a private
connection, and commands that must not pass through a proxy.
"""

# kind -> meaning
#   key       route by the slot of its keys (all keys must share one slot)
#   any       no keys: any master will do
#   local     served by the proxy itself (localcmds.py)
#   deny      refused with the reason given
#   fanout    sent to every master, replies combined
#   multikey  keys may span slots: split per node and merged
#   blocking  needs a private connection for as long as it blocks
#   txn       MULTI/EXEC family: a private connection pinned to one slot's node
#   pubsub    subscriptions: a private connection per subscribed client
#   home      to the home master (serverpool.home): PUBLISH, where the subscribers are, so its
#             count is theirs; PING, answered by the proxy when the home master is down
NOT_HERE = "%s is not allowed through geproxy"

OVERRIDES = {
    "ping": "home", "echo": "local", "quit": "local", "select": "local", "hello": "local",
    "auth": "local", "client": "local", "readonly": "local", "readwrite": "local",
    "reset": "local", "info": "local", "cluster": "local", "asking": "local", "config": "local",
    "monitor": "local",
    "keys": "fanout", "scan": "fanout", "dbsize": "fanout", "randomkey": "fanout",
    "flushall": "fanout", "flushdb": "fanout", "script": "fanout", "function": "fanout",
    "pubsub": "fanout", "acl": "fanout", "slowlog": "fanout",
    "mget": "multikey", "mset": "multikey", "del": "multikey", "unlink": "multikey",
    "exists": "multikey", "touch": "multikey",
    "multi": "txn", "exec": "txn", "discard": "txn", "watch": "txn", "unwatch": "txn",
    "subscribe": "pubsub", "psubscribe": "pubsub", "unsubscribe": "pubsub",
    "punsubscribe": "pubsub", "ssubscribe": "pubsub", "sunsubscribe": "pubsub",
    "wait": "blocking", "waitaof": "blocking",
    "publish": "home",
}
# multikey commands: arguments per key (MSET's key and value), for splitting them by slot
SPLIT_STEP = {"mget": 1, "mset": 2, "del": 1, "unlink": 1, "exists": 1, "touch": 1}

DENY = {
    name: NOT_HERE % name.upper()
    for name in ("shutdown", "debug", "sync", "psync", "replconf", "replicaof", "slaveof",
                 "failover", "swapdb", "move", "migrate", "save", "bgsave", "bgrewriteaof",
                 "module", "restore-asking")
}
DENY["move"] = "MOVE is not allowed in cluster mode"
DENY["swapdb"] = "SWAPDB is not allowed in cluster mode"

# Commands with the 'blocking' flag that only block when given this option.
BLOCK_OPTION = {"xread": b"block", "xreadgroup": b"block"}


class Command:
    """One command's routing facts, compiled from its COMMAND entry."""

    __slots__ = ("name", "arity", "flags", "kind", "reason", "finders", "keyflags", "key_index", "subcommands",
                 "single", "split", "readonly")

    def __init__(self, entry, parent=None):
        name = _text(entry[0])
        self.name = name            # "get", or "object|encoding" for a subcommand
        self.arity = entry[1]
        self.flags = frozenset(_text(f) for f in entry[2])
        self.readonly = "readonly" in self.flags   # may be served by a replica
        # keyflags: each finder's key spec flags (RO, RW, ACCESS, UPDATE, NOT_KEY, ...; none for legacy keys)
        self.finders, self.keyflags = _compile_keyspecs(entry[8] if len(entry) > 8 else [], entry[3:6])
        # The common case, one key at a fixed index: skip the general finder.
        self.key_index = None
        if len(self.finders) == 1 and self.finders[0][0] == "index" and self.finders[0][2] == ("range", 0, 1, 0):
            self.key_index = self.finders[0][1]
        if parent is None:
            self.kind = OVERRIDES.get(name)
            self.reason = DENY.get(name)
            if self.reason:
                self.kind = "deny"
            elif self.kind is None:
                blocking = "blocking" in self.flags and name not in BLOCK_OPTION
                self.kind = "blocking" if blocking else ("key" if self.finders else "any")
        else:
            inherit = parent.kind not in ("key", "any")
            self.kind = parent.kind if inherit else ("key" if self.finders else "any")
            self.reason = parent.reason
        self.subcommands = {}
        for sub in (entry[9] if len(entry) > 9 else []) or []:
            cmd = Command(sub, parent=self)
            self.subcommands[cmd.name.split("|")[1].encode()] = cmd
        # The router's fast paths: a plain one-key command, a multi-key one.
        self.single = self.key_index if self.kind == "key" and not self.subcommands else None
        self.split = SPLIT_STEP.get(name) if self.kind == "multikey" else None

    def lookup(self, args):
        """The subcommand entry for args, when this command has subcommands."""
        if self.subcommands and len(args) > 1:
            return self.subcommands.get(args[1].lower())
        return None

    def arity_ok(self, nargs):
        a = self.arity
        return nargs == a if a >= 0 else nargs >= -a

    def keys(self, args):
        """The key arguments of args, by the command's key specs."""
        if self.key_index is not None:
            i = self.key_index
            return [args[i]] if i < len(args) else []
        keys = []
        for finder in self.finders:
            keys.extend(_find(finder, args))
        return keys

    def keys_with_flags(self, args):
        """(key, its key spec flags) for each key argument: what Authority
        needs to tell a key read from a key written."""
        if self.key_index is not None:
            i = self.key_index
            return [(args[i], self.keyflags[0])] if i < len(args) else []
        return [(k, flags) for finder, flags in zip(self.finders, self.keyflags) for k in _find(finder, args)]

    def blocks(self, args):
        """Does this invocation block?  XREAD only with BLOCK, BLPOP always."""
        if self.kind == "blocking":
            return True
        option = BLOCK_OPTION.get(self.name)
        return option is not None and any(a.lower() == option for a in args[1:])


def _text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def _pairs(flat):
    it = iter(flat or [])
    return {_text(k): v for k, v in zip(it, it)}


def _compile_keyspecs(specs, legacy):
    """Key specs as tuples: (begin kind, begin arg, find tuple); and each one's
    flags, upper case (frozenset(), unknown, for legacy key positions)."""
    out, flags = [], []
    for raw in specs or []:
        spec = _pairs(raw)
        begin, find = _pairs(spec.get("begin_search")), _pairs(spec.get("find_keys"))
        bspec, fspec = _pairs(begin.get("spec")), _pairs(find.get("spec"))
        btype, ftype = _text(begin.get("type", b"")), _text(find.get("type", b""))
        if btype == "index":
            b = ("index", bspec["index"])
        elif btype == "keyword":
            b = ("keyword", bspec["keyword"].lower(), bspec["startfrom"])
        else:
            b = ("unknown", None)
        if ftype == "range":
            f = ("range", fspec["lastkey"], fspec["keystep"], fspec["limit"])
        elif ftype == "keynum":
            f = ("keynum", fspec["keynumidx"], fspec["firstkey"], fspec["keystep"])
        else:
            f = ("unknown",)
        known = frozenset(_text(x).upper() for x in spec.get("flags") or ())
        if b[0] != "unknown" and f[0] != "unknown":
            out.append(b + (f,))
            flags.append(known)
        elif b[0] == "unknown" and b"STORE" in (spec.get("notes") or b""):
            out.append(("keyword", b"store", 2, ("range", 0, 1, 0)))  # SORT ... STORE dst
            flags.append(known)
    if not specs:
        first, last, step = legacy
        if first > 0:
            out.append(("index", first, ("range", last - first if last >= 0 else last, step, 0)))
            flags.append(frozenset())
    return out, flags


def _find(finder, args):
    n = len(args)
    if finder[0] == "index":
        begin = finder[1]
        find = finder[2]
    else:
        _, keyword, start = finder[0], finder[1], finder[2]
        begin = None
        order = range(start, n) if start >= 0 else range(n + start, 0, -1)
        for i in order:
            if args[i].lower() == keyword:
                begin = i + 1
                break
        if begin is None:
            return []
        find = finder[3]
    if begin >= n:
        return []
    if find[0] == "range":
        _, lastkey, step, limit = find
        if lastkey >= 0:
            last = begin + lastkey
        elif limit <= 1:
            last = n + lastkey
        else:
            last = begin + (n - begin) // limit - 1
        return args[begin:min(last, n - 1) + 1:step]
    _, numidx, firstkey, step = find
    try:
        count = int(args[begin + numidx])
    except (ValueError, IndexError):
        return []
    first = begin + firstkey
    if count <= 0:
        return []
    return args[first:min(first + count * step, n):step]


class CommandTable:
    """All commands by lower-case name, built from a COMMAND reply."""

    def __init__(self, command_reply):
        self.commands = {}
        for entry in command_reply:
            cmd = Command(entry)
            self.commands[cmd.name.encode()] = cmd
        # By exact name in lower and upper case, so most lookups need no .lower().
        self.lookup = dict(self.commands)
        self.lookup.update((name.upper(), cmd) for name, cmd in self.commands.items())

    def get(self, name):
        """The command by name, any case."""
        return self.lookup.get(name) or self.commands.get(name.lower())

    def __len__(self):
        return len(self.commands)
