"""Pub/sub for one client: SUBSCRIBE / PSUBSCRIBE on a private connection to
the pub/sub home master, where PUBLISH goes too (serverpool.home), and
SSUBSCRIBE on a private connection to each shard channel's master.

What the backends send (confirmations, messages; RESP2 arrays or RESP3
pushes, as the client speaks) is appended to the client's reply queue as it
arrives.  To keep a RESP2 client's replies in order, the proxy tracks what it
subscribed to as it sends the commands (not when the confirmations come), a
command refused in the subscribed state is answered through the connection
(a PING whose reply is swapped for the error), and after the last UNSUBSCRIBE
other commands wait for the confirmations still due.  A connection with
nothing subscribed and nothing due is closed, as are all when the client goes.

Counts: all of a client's channels and patterns are on one connection, so
the home master's counts are the client's; shard channels are spread over
nodes, so their confirmations are given the client's total (_shard_count).

A client class with key prefixes hears only channels it may read
(channels.py): each message is checked against its channel before it goes
out, whatever pattern brought it, and whichever class subscribed.
"""

import logging
from collections import deque

import gevent
import hiredis
from gevent.event import Event

from . import channels, greenlets, private
from .resp import NOT_READY, SLOT_DOWN, command, decode, error

log = logging.getLogger("geproxy.pubsub")

GLOBAL = "global"
ANSWERS = frozenset((b"subscribe", b"unsubscribe", b"psubscribe", b"punsubscribe", b"ssubscribe",
                     b"sunsubscribe", b"pong"))
# What a RESP2 client may send while subscribed.
ALLOWED = frozenset(("subscribe", "psubscribe", "unsubscribe", "punsubscribe", "ssubscribe",
                     "sunsubscribe", "ping", "quit", "reset"))
SHARDED = frozenset(("ssubscribe", "sunsubscribe"))
SHARD_ANSWERS = frozenset((b"ssubscribe", b"sunsubscribe"))
SET_OF = {"subscribe": "channels", "unsubscribe": "channels", "psubscribe": "patterns",
          "punsubscribe": "patterns", "ssubscribe": "shard", "sunsubscribe": "shard"}
PING = b"*1\r\n$4\r\nPING\r\n"
NOTIFY = channels.NOTIFY  # __keyspace@0__:..., __keyevent@0__:...: published on the key's node only
MESSAGES = {b"message": 1, b"smessage": 1, b"pmessage": 2}   # kind -> where its channel is
ECHO_WAIT = 2.0     # seconds a subscription waits for the other masters to confirm it


def not_allowed(name):
    return error("ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET "
                 "are allowed in this context" % name)


class PubSub:
    def __init__(self, sender, session):
        self.sender = sender
        self.session = session
        self.conns = {}         # GLOBAL or master addr -> PrivateConn
        self.readers = {}
        self.names = {}         # conn key -> {"channels"|"patterns"|"shard": set of names}
        self.due = {}           # conn key -> answers still to come (confirmations, pongs)
        self.swaps = {}         # conn key -> deque: per PING sent, None or the reply to give instead
        self._settled = None
        self.echoes = {}        # master addr -> PrivateConn for keyspace notifications (see _echo)
        self.echo_due = {}      # master addr -> subscribe confirmations still to come on its echo
        self._echoed = None     # Event: every echo confirmed what _echo sent
        self.shard_heard = set()  # shard channels the client has seen confirmed, for its counts

    def subscribed(self):
        return any(s for sets in self.names.values() for s in sets.values())

    def outstanding(self):
        return any(self.due.values())

    # -- commands --

    def command(self, name, args, raw):
        """Send a (un)subscribe or PING.  Returns b"" when the replies come from
        the connection, else the reply itself."""
        names = args[1:]
        if name in SHARDED:
            if not names:  # SUNSUBSCRIBE all: each shard connection with channels answers for them
                keys = [k for k in self.conns if k != GLOBAL and self.names[k]["shard"]]
                for key in keys:
                    self._send(key, None, raw, name, names)
                return b"" if keys else self._local(self._none_left(args))
            key_slot = self.sender.pool.key_slot
            slot = key_slot(names[0])
            if any(key_slot(c) != slot for c in names[1:]):
                return self._local(self.sender.pool.cross({key_slot(c) for c in names}))
            server = self.sender.pool.slots[slot]
            if server is None:
                return self._local(SLOT_DOWN)
            if name == "sunsubscribe" and server.addr not in self.conns:
                return self._local(self._none_left(args))
            return self._send(server.addr, server, raw, name, names)
        if name in ("unsubscribe", "punsubscribe") and GLOBAL not in self.conns:
            return self._local(self._none_left(args))
        if name == "ping":
            return self.answer_through(None, raw)
        home = self.sender.pool.home()
        notify = [n for n in names if channels.may_notify(n, name.startswith("p"))]
        subscribing = name in ("subscribe", "psubscribe")
        if subscribing and notify:  # active on every master before the home master confirms
            self._echo(home, name, notify)
        reply = self._send(GLOBAL, home, raw, name, names)
        if not subscribing and reply == b"" and (notify or not names):
            self._echo(home, name, notify)
        return reply

    def _echo(self, home, name, names):
        """Keyspace notifications are published only on the node that holds the
        key: (un)subscribe the names that can match `__key...` channels on every
        other master too, on connections that forward only those notifications
        (PUBLISH is broadcast: the home master delivers everything else once).
        A subscription waits (at most ECHO_WAIT) until every master confirmed it,
        so the client's confirmation, which the home master sends after, means
        that no notification from any master can be missed any more."""
        if name.startswith(("subscribe", "psubscribe")) and not names:
            return
        raw = command(name, *names)
        subscribing = not name.endswith("unsubscribe")
        if subscribing:
            self._echoed = Event()
        for server in self.sender.pool.masters:
            if server is home:
                continue
            conn = self.echoes.get(server.addr)
            if conn is None:
                if name.endswith("unsubscribe"):
                    continue
                try:
                    conn = self.echoes[server.addr] = private.checkout(server, self.session.via)
                except private.ERRORS as e:
                    log.warning("client %s: no keyspace notifications from %s: %s", self.session.peer(),
                                server.addr, e)
                    continue
                self.readers[("echo", server.addr)] = greenlets.spawn(self._read_echo, server, conn)
            try:
                conn.send(raw)
                if subscribing:
                    self.echo_due[server.addr] = self.echo_due.get(server.addr, 0) + len(names)
            except private.ERRORS:
                self._drop_echo(server.addr)
        if subscribing:
            if any(self.echo_due.values()) and not self._echoed.wait(ECHO_WAIT):
                log.warning("client %s: a master did not confirm %s within %ss; confirming anyway",
                            self.session.peer(), name, ECHO_WAIT)
            self._echoed = None

    def _read_echo(self, server, conn):
        addr = server.addr
        try:
            while True:
                msg = conn.read_reply(timeout=None)
                parsed = decode(msg)
                kind = parsed[0] if isinstance(parsed, list) and parsed else None
                if kind in (b"message", b"pmessage"):
                    channel = parsed[1] if kind == b"message" else parsed[2]
                    if channel.startswith(NOTIFY) and self._may_hear(channel):
                        self.session.push(msg)
                elif kind in (b"subscribe", b"psubscribe") and self.echo_due.get(addr):
                    self.echo_due[addr] -= 1
                    self._echo_confirmed()
        except Exception as e:  # the node's doing or a bug of ours: logged once, the echo dropped
            private.failed(server, e)
            self._drop_echo(addr)

    def _echo_confirmed(self):
        if self._echoed is not None and not any(self.echo_due.values()):
            self._echoed.set()

    def _drop_echo(self, addr):
        conn = self.echoes.pop(addr, None)
        self.readers.pop(("echo", addr), None)
        self.echo_due.pop(addr, None)   # a master lost confirms nothing: wait no more for it
        self._echo_confirmed()
        if conn is not None:
            conn.close()

    def answer_through(self, reply, ping=PING):
        """Answer in order with what a subscribed connection says next: a PING
        goes out; its pong is forwarded (reply None) or swapped for `reply`."""
        key = GLOBAL if GLOBAL in self.conns else next(iter(self.conns), None)
        if key is None:
            return reply or b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
        self.swaps[key].append(reply)
        return self._send(key, None, ping, "ping", [])

    def _local(self, reply: bytes) -> bytes:
        """A reply made here goes after the confirmations still due on any of
        the client's connections (they come as they arrive, this one in
        order), so the client reads them in the order it asked."""
        self.settle()
        return reply

    def _none_left(self, args):
        """(UN)SUBSCRIBE of nothing the client holds on the connection it would
        go to: answered here, with the count Redis would give (SUNSUBSCRIBE:
        the client's other shard channels; the rest: 0, all are on one connection)."""
        kind = args[0].lower()
        count = len(self.shard_heard) if kind == b"sunsubscribe" else 0
        proto3 = self.session.proto == 3
        out = []
        for c in args[1:] or [None]:
            if c is None:
                item = b"_\r\n" if proto3 else b"$-1\r\n"
            else:
                item = b"$%d\r\n%s\r\n" % (len(c), c)
            head = b">3\r\n" if proto3 else b"*3\r\n"
            out.append(head + b"$%d\r\n%s\r\n" % (len(kind), kind) + item + b":%d\r\n" % count)
        return b"".join(out)

    def _send(self, key, server, raw, name, names):
        conn = self.conns.get(key)
        if conn is None:
            if server is None:
                return NOT_READY
            try:
                conn = private.checkout(server, self.session.via)
            except Exception as e:
                return private.failed(server, e)
            self.conns[key] = conn
            self.names[key] = {"channels": set(), "patterns": set(), "shard": set()}
            self.due[key] = 0
            self.swaps[key] = deque()
            self.readers[key] = greenlets.spawn(self._read, key, conn)
        self.due[key] += self._track(key, name, names)
        try:
            conn.send(raw)
        except private.ERRORS as e:
            self._lost(key, e)
            return error("ERR geproxy: %s" % e)
        return b""

    def _track(self, key, name, names):
        """Update what we are subscribed to; how many answers the command brings."""
        if name == "ping":
            return 1
        current = self.names[key][SET_OF[name]]
        if name.endswith("unsubscribe"):
            answers = len(names) or max(1, len(current))
            if names:
                current.difference_update(names)
            else:
                current.clear()
            return answers
        current.update(names)
        return len(names)

    # -- what the connections say --

    def _read(self, key, conn):
        session = self.session
        try:
            while True:
                msg = conn.read_reply(timeout=None)
                parsed = _parsed(msg)
                kind = parsed[0] if parsed else None
                if kind in MESSAGES and not self._may_hear(parsed[MESSAGES[kind]]):
                    continue
                if kind in SHARD_ANSWERS:  # a node counts its own shard channels; Redis counts all
                    msg = self._shard_count(msg, kind, parsed[1])
                if kind in ANSWERS:
                    self.due[key] -= 1
                    if kind == b"pong" and self.swaps[key]:
                        msg = self.swaps[key].popleft() or msg
                session.push(msg)
                if not self.outstanding():
                    if self._settled is not None:
                        self._settled.set()
                    session.update_mode()
                if not self.due[key] and not any(self.names[key].values()):
                    self._drop(key)  # nothing subscribed, nothing due: release it
                    return
        except Exception as e:  # the node's doing or a bug of ours: the client learns it lost them
            if not isinstance(e, private.ERRORS):
                log.error("client %s: pub/sub reader failed", session.peer(), exc_info=e)
            self._lost(key, e)

    def _shard_count(self, msg: bytes, kind: bytes, channel) -> bytes:
        """The (un)subscribe confirmation with the client's count of shard
        channels, over every node, as the client has seen them confirmed: the
        count one Redis would give (Redis 7.0 counts shard channels apart from
        channels and patterns).  Also for a node's own SUNSUBSCRIBE when a slot
        moves away."""
        if channel is not None:
            if kind == b"ssubscribe":
                self.shard_heard.add(channel)
            else:
                self.shard_heard.discard(channel)
        return msg[:msg.rindex(b"\r\n:") + 2] + b":%d\r\n" % len(self.shard_heard)

    def _may_hear(self, channel):
        """May the client's class, as it is now, hear this channel?"""
        grant = self.session.grant
        return grant is None or not grant.prefixed or channels.channel_allowed(grant, channel)

    def settle(self):
        """Wait for the answers still due (e.g. after the last UNSUBSCRIBE)."""
        while self.outstanding() and self.conns:
            self._settled = Event()
            self._settled.wait(5)
        self._settled = None

    def _lost(self, key, why):
        if key in self.conns:
            log.warning("client %s: pub/sub connection lost: %s; closing the client", self.session.peer(), why)
            self._drop(key)
            self.session.hang_up()

    def _drop(self, key):
        conn = self.conns.pop(key, None)
        for table in (self.names, self.due, self.swaps, self.readers):
            table.pop(key, None)
        if conn is not None:
            conn.close()

    def close(self):
        for g in list(self.readers.values()):
            if g is not gevent.getcurrent():
                g.kill(block=False)
        for key in list(self.conns):
            self._drop(key)
        for addr in list(self.echoes):
            self._drop_echo(addr)


def _parsed(msg):
    """An array or push whose first element names it (b"message", b"subscribe",
    b"pong", ...), as a list; None for anything else."""
    if msg[:1] not in (b"*", b">"):
        return None
    r = hiredis.Reader()
    r.feed(msg)
    parsed = r.gets()
    return parsed if isinstance(parsed, list) and parsed and isinstance(parsed[0], bytes) else None
