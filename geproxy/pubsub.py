"""Pub/sub for one client: SUBSCRIBE / PSUBSCRIBE on a private connection to
any master (cluster pub/sub is broadcast, one node hears every channel), and
SSUBSCRIBE on a private connection to each shard channel's master.

What the backends send (confirmations, messages; RESP2 arrays or RESP3
pushes, as the client speaks) is appended to the client's reply queue as it
arrives, so it stays in order with the client's other replies.  When the
last subscription is gone, or the client is, the connections are closed.
"""

import logging

import gevent
import hiredis

from . import private
from .resp import error
from .slots import key_slot

log = logging.getLogger("geproxy.pubsub")

GLOBAL = "global"
CONFIRMATIONS = frozenset((b"subscribe", b"unsubscribe", b"psubscribe", b"punsubscribe",
                           b"ssubscribe", b"sunsubscribe"))
# What a RESP2 client may send while subscribed.
ALLOWED = frozenset(("subscribe", "psubscribe", "unsubscribe", "punsubscribe", "ssubscribe",
                     "sunsubscribe", "ping", "quit", "reset"))
SHARDED = frozenset(("ssubscribe", "sunsubscribe"))


def not_allowed(name):
    return error("ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET "
                 "are allowed in this context" % name)


class PubSub:
    def __init__(self, router, session):
        self.router = router
        self.session = session
        self.conns = {}         # GLOBAL or master addr -> PrivateConn, kept until the client goes
        self.readers = {}
        self.counts = {}        # same keys -> subscriptions on that connection

    def subscribed(self):
        return any(self.counts.values())

    def command(self, name, args, raw):
        """Send a (un)subscribe or PING.  Returns b"" when the replies come from
        the connection, else the reply itself."""
        if name in SHARDED:
            channels = args[1:]
            if not channels:  # SUNSUBSCRIBE all: every shard connection
                for key in [k for k in self.conns if k != GLOBAL]:
                    self._send(key, None, raw)
                return b"" if any(k != GLOBAL for k in self.conns) else self._none_left(args)
            slot = key_slot(channels[0])
            if any(key_slot(c) != slot for c in channels[1:]):
                return error("CROSSSLOT Keys in request don't hash to the same slot")
            server = self.router.pool.slots[slot]
            if server is None:
                return error("CLUSTERDOWN Hash slot not served")
            if name == "sunsubscribe" and server.addr not in self.conns:
                return self._none_left(args)
            return self._send(server.addr, server, raw)
        if name in ("unsubscribe", "punsubscribe") and GLOBAL not in self.conns:
            return self._none_left(args)
        if name == "ping":
            key = GLOBAL if GLOBAL in self.conns else next(iter(self.conns), None)
            return self._send(key, None, raw) if key else b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
        return self._send(GLOBAL, self.router.pool.any_master(), raw)

    def _none_left(self, args):
        """(UN)SUBSCRIBE with nothing subscribed: Redis answers with count 0."""
        kind = args[0].lower()
        channels = args[1:] or [None]
        out = []
        for c in channels:
            item = b"$-1\r\n" if c is None else b"$%d\r\n%s\r\n" % (len(c), c)
            head = b">3\r\n" if self.session.proto == 3 else b"*3\r\n"
            out.append(head + b"$%d\r\n%s\r\n" % (len(kind), kind) + item + b":0\r\n")
        return b"".join(out)

    def _send(self, key, server, raw):
        conn = self.conns.get(key)
        if conn is None:
            if server is None:
                return error("CLUSTERDOWN geproxy has not reached any cluster node yet")
            try:
                conn = private.checkout(server, self.session.proto)
            except private.ERRORS as e:
                return error("ERR geproxy: %s" % e)
            self.conns[key] = conn
            self.counts[key] = 0
            self.readers[key] = gevent.spawn(self._read, key, conn)
        try:
            conn.send(raw)
        except private.ERRORS as e:
            self._lost(key, e)
            return error("ERR geproxy: %s" % e)
        return b""

    def _read(self, key, conn):
        """Forward everything the connection says; track subscription counts."""
        session = self.session
        try:
            while True:
                msg = conn.read_reply(timeout=None)
                if msg[:1] in (b"*", b">"):
                    parsed = _parse(msg)
                    if isinstance(parsed, list) and len(parsed) == 3 and parsed[0] in CONFIRMATIONS:
                        self.counts[key] = parsed[2]
                        if not self.subscribed():
                            session.subscribed = False
                            session.update_mode()
                session.push(msg)
        except private.ERRORS as e:
            self._lost(key, e)

    def _drop(self, key):
        conn = self.conns.pop(key, None)
        self.counts.pop(key, None)
        self.readers.pop(key, None)
        if conn is not None:
            conn.close()

    def _lost(self, key, why):
        if key in self.conns:
            log.warning("client %s: pub/sub connection lost: %s; closing the client", self.session.peer(), why)
            self._drop(key)
            self.session.hang_up()

    def close(self):
        for key, g in list(self.readers.items()):
            if g is not gevent.getcurrent():
                g.kill(block=False)
        for key in list(self.conns):
            self._drop(key)


def _parse(msg):
    r = hiredis.Reader()
    r.feed(msg)
    return r.gets()
