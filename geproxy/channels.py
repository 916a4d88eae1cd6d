"""Which pub/sub channels a client class with key prefixes may use.

predixy's Authority promises a class sees only its key prefixes; channels
carry data too, so they follow the same prefixes: a class may subscribe to
channels starting with a read prefix and publish on channels starting with a
write prefix (KeyPrefix binds both).  A pattern is allowed only when it cannot
match outside them: its literal start (before any glob character) must begin
with an allowed prefix.

Keyspace notifications name keys: `__keyspace@<db>__:<key>` follows the key's
prefixes, and `__keyevent@<db>__:<event>` carries key names of every prefix,
so a prefixed class may not hear it.  As a second line, every message sent to
a prefixed class is checked against its channel on the way out (pubsub.py),
so a pattern such as `__keyspace@*__:User*` never delivers another prefix's key.
"""

from .resp import error

NOPERM_CHANNEL = error("NOPERM this user has no permissions to access one of the channels used as arguments")
NOTIFY = b"__key"           # __keyspace@0__:..., __keyevent@0__:...
KEYSPACE = b"__keyspace@"
GLOB = b"*?[\\"

# command -> (arguments that are channels, 'pattern' or 'channel', publishing?)
CHANNEL_ARGS = {
    "subscribe": (slice(1, None), "channel", False),
    "ssubscribe": (slice(1, None), "channel", False),
    "sunsubscribe": (slice(1, None), "channel", False),   # Redis's table lists its channels as keys
    "psubscribe": (slice(1, None), "pattern", False),
    "publish": (slice(1, 2), "channel", True),
    "spublish": (slice(1, 2), "channel", True),
    "pubsub|numsub": (slice(2, None), "channel", False),
    "pubsub|shardnumsub": (slice(2, None), "channel", False),
    "pubsub|channels": (slice(2, 3), "pattern", False),
    "pubsub|shardchannels": (slice(2, 3), "pattern", False),
}
# Listings of channels: without a pattern they would show every prefix's.
LISTINGS = frozenset(("pubsub|channels", "pubsub|shardchannels"))


def refusal(grant, name: str, args: list):
    """NOPERM_CHANNEL when a prefixed `grant` may not use the channels or
    patterns of this command, else None (also for commands without channels)."""
    how = CHANNEL_ARGS.get(name)
    if how is None:
        return None
    where, kind, publishing = how
    names = args[where]
    if name in LISTINGS and not names:
        return NOPERM_CHANNEL
    allowed = pattern_allowed if kind == "pattern" else channel_allowed
    if all(allowed(grant, n, publishing) for n in names):
        return None
    return NOPERM_CHANNEL


def channel_allowed(grant, channel: bytes, publishing: bool = False) -> bool:
    """May `grant` hear (or publish on) this channel?"""
    if channel.startswith(NOTIFY):
        key = keyspace_key(channel)
        return key is not None and _under(grant, key, publishing)
    return _under(grant, channel, publishing)


def pattern_allowed(grant, pattern: bytes, publishing: bool = False) -> bool:
    """Can every channel this glob pattern matches be heard by `grant`?"""
    if may_notify(pattern, True):
        if not pattern.startswith(KEYSPACE):
            return False        # __keyevent@..., __key*: key names of every prefix
        db, sep, key_part = pattern[len(KEYSPACE):].partition(b"__:")
        if not sep or not (db.isdigit() or db == b"*"):
            return False        # '?' or '[..]' in the database could shift where the key starts
        return _under(grant, _literal(key_part), publishing)
    return _under(grant, _literal(pattern), publishing)


def keyspace_key(channel: bytes):
    """The key a `__keyspace@<db>__:<key>` channel is about; None for any
    other `__key...` channel (keyevent ones name an event, not a key)."""
    if not channel.startswith(KEYSPACE):
        return None
    db, sep, key = channel[len(KEYSPACE):].partition(b"__:")
    return key if sep and db.isdigit() else None


def may_notify(name: bytes, pattern: bool) -> bool:
    """Can this channel, or pattern, name a keyspace notification channel?"""
    if not pattern:
        return name.startswith(NOTIFY)
    literal = _literal(name)
    return literal.startswith(NOTIFY) or NOTIFY.startswith(literal)


def _literal(pattern):
    """The fixed start of a glob pattern: every match begins with it."""
    for i, c in enumerate(pattern):
        if c in GLOB:
            return pattern[:i]
    return pattern


def _under(grant, name, publishing):
    """Does `name` start with the class's prefixes (write ones to publish, read ones to hear)?"""
    prefixes = grant.write if publishing else grant.read
    return (not grant.key or name.startswith(grant.key)) and (not prefixes or name.startswith(prefixes))
