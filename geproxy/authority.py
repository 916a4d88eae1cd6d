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
"""

import logging
import time

from .resp import error

log = logging.getLogger("geproxy.auth")

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
    if grant.prefixed:
        if cmd.name in SCRIPTS and not grant.unsafe_scripts:
            return NO_SCRIPTS
        if cmd.name == "dbsize":
            return NO_DBSIZE
    prefixes = grant.write if level >= WRITE else grant.read
    if grant.key or prefixes:
        for k in cmd.keys(args):
            if (grant.key and not k.startswith(grant.key)) or (prefixes and not k.startswith(prefixes)):
                return NOPERM_KEY
    return None


class SampledLog:
    """At most `per_second` lines a second, then one line saying how many were
    left out: a flood of bad passwords cannot fill the disk."""

    def __init__(self, per_second=5):
        self.per_second = per_second
        self.second, self.count, self.dropped = 0, 0, 0

    def note(self, peer):
        now = int(time.time())
        if now != self.second:
            if self.dropped:
                log.warning("%d more failed AUTH attempts not logged", self.dropped)
            self.second, self.count, self.dropped = now, 0, 0
        self.count += 1
        if self.count <= self.per_second:
            log.warning("failed AUTH from %s", peer)
        else:
            self.dropped += 1


FAILED_AUTH = SampledLog()
