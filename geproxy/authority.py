"""Authority: predixy's extended AUTH.

Each [Authority] subsection is a class of clients: a password, a mode
(read < write < admin) and key prefixes.  The subsection without a password is
what a client has before AUTH (none: it must AUTH first).  Without an
[Authority] section everyone is admin, as in predixy.  Checked on every key of
every command a restricted client sends.

What the proxy cannot see it refuses: a Lua script or function can reach keys
it never declares, so a class with key prefixes may not run them unless it
opts in (UnsafeScripts); DBSIZE counts keys of every prefix.  Listings (KEYS,
SCAN, RANDOMKEY) show such a class only the keys it may read (fanout.py).
Commands that show data of every prefix (DBSIZE, FUNCTION DUMP, MEMORY STATS,
...) need a class without prefixes; channels follow the prefixes (channels.py).

Read or written is decided per key from Redis's key specs: a key whose value
is returned (ACCESS: GETSET, LPOP, SET ... GET, LMOVE's source) needs a read
prefix even under a write command, and a key changed (INSERT, DELETE, UPDATE)
a write prefix.
"""

from . import channels
from .resp import error

READ, WRITE, ADMIN = 0, 1, 2
LEVELS = {"read": READ, "write": WRITE, "admin": ADMIN}

# Beyond Redis's own 'write' and 'admin' flags: what changes data or the whole service.
WRITE_EXTRA = frozenset(("eval", "evalsha", "fcall", "publish", "spublish", "script|load", "function|load"))
ADMIN_EXTRA = frozenset(("flushall", "flushdb", "config", "script|flush", "script|kill", "function|flush",
                         "function|delete", "function|restore", "function|kill"))
# Allowed before AUTH.
OPEN = frozenset(("auth", "hello", "quit", "reset"))

NOAUTH = error("NOAUTH Authentication required.")
WRONGPASS = error("WRONGPASS invalid username-password pair or user is disabled.")
NOPERM = "NOPERM this user has no permissions to run the '%s' command"
NOPERM_KEY = error("NOPERM this user has no permissions to access one of the keys used as arguments")
# Commands that run code able to reach undeclared keys, or that count every key.
SCRIPTS = frozenset(("eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro", "script|load",
                     "function|load", "function|restore"))
NO_SCRIPTS = error("NOPERM geproxy: a Lua script or function can reach keys it does not declare, outside this "
                   "client class's key prefixes, so the class may not run them (UnsafeScripts = yes allows it)")
NO_DBSIZE = error("NOPERM geproxy: DBSIZE counts the keys of every prefix; this client class has key prefixes")
# Commands that show data of every prefix: only for a class that may see every key.
WHOLE = {
    "function|dump": "shows every library's code", "function|stats": "shows the function running, with its "
    "arguments", "memory|stats": "describes every key", "memory|doctor": "describes every key",
    "memory|malloc-stats": "describes every key",
}
WHOLE_ERROR = "NOPERM geproxy: %s %s; this client class has key prefixes"
# Key spec flags: the value is read (returned, copied or used) / the key is changed.
READS = frozenset(("RO", "ACCESS"))
WRITES = frozenset(("INSERT", "DELETE", "UPDATE", "OW", "RM"))
SORTS = frozenset(("sort", "sort_ro"))


class Grant:
    """What one class of clients may do."""

    def __init__(self, name, password="", mode="admin", key=(), read=(), write=(), unsafe_scripts=False,
                 redis_user=False):
        self.name, self.password = name, password
        self.redis_user = redis_user    # a Redis ACL user's login: Redis checks what reaches it
        self.level = LEVELS[mode]
        self.key, self.read, self.write = (tuple(p.encode() for p in ps) for ps in (key, read, write))
        self.prefixed = bool(self.key or self.read or self.write)
        self.unsafe_scripts = unsafe_scripts
        self.unrestricted = self.level == ADMIN and not self.prefixed

    def may_read(self, key):
        """May this class see `key` (in KEYS, SCAN, RANDOMKEY)?"""
        return (not self.key or key.startswith(self.key)) and (not self.read or key.startswith(self.read))


EVERYONE = Grant("admin")


def redis_user(user):
    """The grant of a client logged in as a Redis ACL user (login.py): Redis
    checks every command the proxy passes on; the proxy keeps its own admin
    commands (CONFIG, CLIENT KILL, ...) from it."""
    return Grant(user.decode("utf-8", "replace"), mode="write", redis_user=True)


class Authority:
    def __init__(self, sections):
        self.enabled = bool(sections)
        self.by_password = {}
        self.default = None if sections else EVERYONE
        for name, s in sections.items():
            grant = Grant(name, s.Password, s.Mode, s.KeyPrefix, s.ReadKeyPrefix, s.WriteKeyPrefix, s.UnsafeScripts)
            if s.Password:
                self.by_password[s.Password] = grant
            else:
                self.default = grant

    def authenticate(self, user, password):
        """The grant for AUTH [user] password, or None.  A user other than
        'default' must be the subsection's name."""
        if not self.enabled:
            return EVERYONE
        grant = self.by_password.get(password.decode("utf-8", "replace"))
        if grant is None or (user not in (None, b"default") and user.decode("utf-8", "replace") != grant.name):
            return None
        return grant


def required_level(cmd):
    if "admin" in cmd.flags or cmd.name in ADMIN_EXTRA:
        return ADMIN
    if "write" in cmd.flags or cmd.name in WRITE_EXTRA:
        return WRITE
    return READ


def check(grant, cmd, args):
    """None when `grant` allows this command on these keys, else the error reply."""
    if grant is None:
        return None if cmd.name in OPEN else NOAUTH
    if grant.unrestricted:
        return None
    level = required_level(cmd)
    if grant.redis_user:  # Redis checks what it is sent; the proxy, what it answers itself
        return error(NOPERM % cmd.name) if cmd.kind == "local" and level == ADMIN else None
    if level > grant.level:
        return error(NOPERM % cmd.name)
    if not grant.prefixed:
        return None
    if cmd.name in SCRIPTS and not grant.unsafe_scripts:
        return NO_SCRIPTS
    if cmd.name == "dbsize":
        return NO_DBSIZE
    refused = _whole(cmd, args) or channels.refusal(grant, cmd.name, args)
    if refused is not None:
        return refused
    for k, read, write in key_access(cmd, args, level):
        if ((grant.key and not k.startswith(grant.key)) or (read and grant.read and not k.startswith(grant.read))
                or (write and grant.write and not k.startswith(grant.write))):
            return NOPERM_KEY
    return None


def key_access(cmd, args, level):
    """(key, read?, written?) for each key of the command, from its key specs.
    Keys without specs (or whose flags say neither) go by the command's level;
    a write command none of whose keys the specs call written (XREADGROUP
    changes its group) counts every key as written."""
    out = []
    for k, flags in cmd.keys_with_flags(args):
        if "NOT_KEY" in flags:          # SPUBLISH's channel: channels.py decides
            continue
        if "VARIABLE_FLAGS" in flags and cmd.name == "set" and not any(a.lower() == b"get" for a in args[3:]):
            flags = WRITES              # SET returns the old value only with GET
        read, write = not flags.isdisjoint(READS), not flags.isdisjoint(WRITES)
        if not (read or write):
            read, write = level < WRITE, level >= WRITE
        out.append((k, read, write))
    if level >= WRITE and not any(w for _, _, w in out):
        out = [(k, r, True) for k, r, _ in out]
    return out


def _whole(cmd, args):
    """Refusal of a command that shows or reaches every prefix's data."""
    name = cmd.name
    if name in WHOLE:
        return error(WHOLE_ERROR % (name.replace("|", " ").upper(), WHOLE[name]))
    if name == "function|list" and any(a.lower() == b"withcode" for a in args[2:]):
        return error(WHOLE_ERROR % ("FUNCTION LIST WITHCODE", "shows every library's code"))
    if name in SORTS:  # BY and GET patterns read keys the command does not name; Redis's own refusal
        for opt, value in zip(args[2:], args[3:]):
            opt = opt.lower()
            if (opt == b"by" and b"*" in value) or (opt == b"get" and value != b"#"):
                return error("ERR %s option of SORT denied due to insufficient ACL permissions." %
                             opt.decode().upper())
    return None
