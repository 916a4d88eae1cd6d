"""SCAN over every master behind one cursor.

The client's cursor is the node's cursor shifted left SHIFT bits, with the
master's index (masters sorted by address) in the low bits.  A call scans the
master the cursor points at; when that master is done and fewer than COUNT
keys were found, the same call goes on to the next master (asking for the
keys still missing), so a small keyspace is walked in one call and ends with
cursor 0, as on one Redis.  A master is always entered at its cursor 0 and
left only when it says 0, so every key is returned at least once while the
topology is stable.

Each step is a request on the node links owned by the Walk, which stands in
the client's reply queue: the reply keeps its place among the client's
pipelined commands, and no connection is held while the next step is sent.
"""

import logging

from .framer import elements
from .request import Request
from .resp import array, bulk, command, decode, error

log = logging.getLogger("geproxy.scan")

SHIFT = 10              # low bits of the client's cursor: which master (up to 1024)
DEFAULT_COUNT = 10      # Redis's default COUNT
INVALID_CURSOR = error("ERR invalid cursor")
CURSOR_LIMIT = 1 << 64  # Redis reads a cursor as an unsigned 64-bit number


def scan(sender, session, masters: list, args: list, grant=None):
    """Start SCAN <cursor> [options] over `masters` (sorted by address); reply
    bytes at once, or the Walk whose reply will come.  `grant`: a client class
    with key prefixes, shown only the keys it may read."""
    cursor = _cursor(args[1])
    if cursor is None:
        return INVALID_CURSOR
    index, node_cursor = cursor & ((1 << SHIFT) - 1), cursor >> SHIFT
    if index >= len(masters):
        return b"*2\r\n$1\r\n0\r\n*0\r\n"
    return Walk(session, sender, masters, args[2:], grant).step(index, node_cursor, None)


def _cursor(raw: bytes):
    """The cursor as Redis reads it (strtoul: digits after an optional sign, a
    negative one wrapping; empty is 0), or None when Redis says invalid."""
    if not raw:
        return 0
    if not raw[raw[:1] in (b"-", b"+"):].isdigit():
        return None
    value = int(raw)
    if not -CURSOR_LIMIT < value < CURSOR_LIMIT:
        return None
    return value % CURSOR_LIMIT


def _count(options: list) -> int:
    """The COUNT the client asked for (the last one, as Redis reads options
    pairwise); DEFAULT_COUNT when absent or not a number (the first node
    then answers the client's own error)."""
    count = DEFAULT_COUNT
    for name, value in zip(options[0::2], options[1::2]):
        if name.lower() == b"count" and value.isdigit():
            count = int(value)
    return max(count, 1)


class Walk:
    """One SCAN call: the master it is on, the keys found so far; itself the
    owner of each step's request, as a Gather is of its parts."""

    __slots__ = ("owner", "sender", "via", "masters", "options", "grant", "count", "keys", "index", "part",
                 "reply")

    def __init__(self, owner, sender, masters, options, grant):
        self.owner = owner
        self.sender = sender
        self.via = owner.via
        self.masters = masters
        self.options = options
        self.grant = grant
        self.count = _count(options)
        self.keys = []
        self.index = 0
        self.part = None
        self.reply = None

    def step(self, index: int, node_cursor: int, options) -> "Walk":
        """Scan master `index` from `node_cursor` (options None: the client's own)."""
        self.index = index
        raw = command(b"SCAN", b"%d" % node_cursor, *(self.options if options is None else options))
        self.part = Request(self, raw, None, self.via)
        self.sender.submit(self.masters[index], self.part)
        return self

    def request_done(self):
        """A step's reply is in: finish, or go on to the next master."""
        try:
            done = self._take(self.part.reply)
        except Exception:  # a reply of a shape we did not expect: this client's error only
            log.exception("cannot read a SCAN reply %r", self.part.reply[:60])
            done = error("ERR geproxy could not read a node's SCAN reply (logged)")
        if done is not None:
            self.part = None
            self.reply = done
            self.owner.request_done()

    def _take(self, reply: bytes):
        """The client's reply when the call ends here, else None (next step sent)."""
        if reply[:1] == b"-":
            return reply
        cursor_raw, keys = elements(reply)
        found = elements(keys)
        if self.grant is not None:
            found = [k for k in found if self.grant.may_read(k[k.index(b"\r\n") + 2:-2])]
        self.keys.extend(found)
        cursor = int(decode(cursor_raw))
        if cursor:
            return self._answer((cursor << SHIFT) | self.index)
        following = self.index + 1
        if following >= len(self.masters):
            return self._answer(0)
        if len(self.keys) >= self.count:
            return self._answer(following)
        self.step(following, 0, self._options(self.count - len(self.keys)))
        return None

    def _options(self, count: int) -> list:
        """The client's options, asking for `count` keys."""
        out = []
        for name, value in zip(self.options[0::2], self.options[1::2]):
            if name.lower() != b"count":
                out += (name, value)
        return out + [b"COUNT", b"%d" % count]

    def _answer(self, cursor: int) -> bytes:
        return b"*2\r\n" + bulk(b"%d" % cursor) + array(self.keys)
