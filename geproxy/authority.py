"""Authority: predixy's extended AUTH.

Each [Authority] subsection is a class of clients: a password, a mode
(read < write < admin) and key prefixes.  The subsection without a password is
what a client has before AUTH (none: it must AUTH first).  Without an
[Authority] section everyone is admin, as in predixy.  Checked on every key of
every command a restricted client sends.
"""

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


class Grant:
    """What one class of clients may do."""

    def __init__(self, name, password="", mode="admin", key=(), read=(), write=()):
        self.name, self.password = name, password
        self.level = LEVELS[mode]
        self.key, self.read, self.write = (tuple(p.encode() for p in ps) for ps in (key, read, write))
        self.unrestricted = self.level == ADMIN and not (self.key or self.read or self.write)


EVERYONE = Grant("admin")


class Authority:
    def __init__(self, sections):
        self.enabled = bool(sections)
        self.by_password = {}
        self.default = None if sections else EVERYONE
        for name, s in sections.items():
            grant = Grant(name, s.Password, s.Mode, s.KeyPrefix, s.ReadKeyPrefix, s.WriteKeyPrefix)
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
    if level > grant.level:
        return error(NOPERM % cmd.name)
    prefixes = grant.write if level >= WRITE else grant.read
    if grant.key or prefixes:
        for k in cmd.keys(args):
            if (grant.key and not k.startswith(grant.key)) or (prefixes and not k.startswith(prefixes)):
                return NOPERM_KEY
    return None
