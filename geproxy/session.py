"""A client session: one greenlet per client connection, reading in a
blocking style.

Each read is parsed into as many commands as it holds and the whole batch is
routed at once, so a pipeline becomes one write per node.  Replies are queued
in the client's order; whoever completes the head of the queue (usually a node
link's reader) schedules a flush, which writes every ready reply in one go
without waking this greenlet.
"""

import itertools
import logging
import socket
import time
from collections import deque

import gevent
from gevent.event import Event

from . import greenlets, gsock
from .login import Login
from .reqparser import RequestParser
from .resp import error

log = logging.getLogger("geproxy.session")

_ids = itertools.count(1)
GUESS = 1024 * 1024  # reply size assumed before any reply is seen: a new client starts with few in flight
STALL = 10          # seconds a client over ClientOutputLimit may read nothing
HARD_LIMIT = 2      # times ClientOutputLimit: closed at once


class Session:
    # Slots, not a __dict__: a thousand idle clients cost a thousand of these.
    __slots__ = ("proxy", "sender", "sock", "address", "laddr", "id", "proto", "login", "via", "name", "lib",
                 "created", "active", "db", "replies", "backlog", "backlog_bytes", "stash", "last_write_slot",
                 "writer", "closing", "busy", "blocked", "greenlet", "mute", "last_cmd", "closed", "txn",
                 "pubsub", "grant", "plain", "reply_size", "auth_failures", "_send", "_scheduled", "_waiter", "_wake_at", "_loop")

    def __init__(self, proxy, sock, address, laddr=None):
        self.proxy = proxy
        self.sender = proxy.sender       # requests' redirections are followed there
        self.sock = sock            # plain or TLS (handshake done): gsock reads and writes either
        self.address = address
        self.laddr = laddr or proxy.cfg.Bind   # the listener it came in on (Bind or TLSBind)
        self._send = gsock.sender(sock)   # writes without waiting (the backlog's writer waits)
        self.id = next(_ids)
        self.proto = 2
        self.login = None           # (user, password) of a Redis ACL user (login.py)
        self.via = 2                # how its node connections log in: proto, or a Login
        self.db = 0                 # SELECTed database (pools of groups)
        self.name = b""
        self.lib = {}
        self.created = self.active = time.time()
        self.replies = deque()      # bytes or Request, in the client's order
        self.backlog = []           # output the socket would not take yet
        self.backlog_bytes = 0
        self.stash = []             # input that arrived while a blocking command waited
        self.last_write_slot = None  # where WAIT must look
        self.writer = None          # greenlet draining the backlog; while it runs, we read no more
        self.closing = False        # QUIT or protocol error: stop reading, finish writing
        self.busy = False           # routing a batch (maybe waiting on a blocking command)
        self.blocked = False        # waiting on a blocking command (INFO's blocked_clients)
        self.greenlet = None        # the one running run(), for CLIENT UNBLOCK
        self.mute = None            # CLIENT REPLY: None (on), "off" or "skip"
        self.last_cmd = None        # for CLIENT LIST's cmd= (set off the fast path only)
        self.closed = False
        self.txn = None             # Transaction, once MULTI or WATCH is used
        self.pubsub = None          # PubSub, once a subscribe is used
        self.grant = proxy.authority.default   # what this client may do (None: must AUTH first)
        self.plain = True           # unrestricted, no MULTI, not in RESP2 pub/sub: the router's fast path
        self.update_mode()
        self.auth_failures = 0      # on this connection, for AuthFailureLimit (authfail.py)
        self.reply_size = GUESS     # recent reply size, for ClientMaxInflightBytes (see room)
        self._scheduled = False
        self._waiter = None         # Event for settle() / closing: woken as output drains
        self._wake_at = 0           # ... once this few replies are due (room: half the limit)
        self._loop = gevent.get_hub().loop

    # -- reading --

    def run(self):
        self.greenlet = gevent.getcurrent()
        proxy = self.proxy
        stats = proxy.stats
        sock = self.sock
        parser = RequestParser()
        bufsize = proxy.cfg.BufSize
        replies = self.replies
        recv, wait_readable, readable = gsock.reader(sock)  # wait first, then read: no failed try
        try:
            while not self.closing:
                if self.writer is not None:  # backpressure: a client that does not read is not read
                    self.writer.join()
                    if self.closed:
                        break
                if self.stash:  # read while a blocking command waited
                    data, self.stash = b"".join(self.stash), []
                else:
                    # Having answered, the client is usually still waiting: wait for input
                    # first rather than try a read that would fail.
                    wait_readable(readable)
                    try:
                        data = recv(bufsize)
                    except BlockingIOError:
                        continue
                if not data or proxy.draining:  # done sending (maybe half-closed), or we stop: answer, close
                    self.closing = True
                    break
                stats.recv_client_bytes += len(data)
                self.active = time.time()
                commands, err = parser.feed(data)
                if commands:
                    self._dispatch(commands)
                if err is not None:
                    log.info("client %s: protocol error: %s", self.peer(), err)
                    replies.append(error("ERR Protocol error: %s" % err))
                    self.closing = True
                self.flush()
            if self.closing:
                self._wait_until(lambda: not self.owes(), 30)
        except OSError:
            pass
        finally:
            self.closed = True
            self.release()

    def _dispatch(self, commands: list) -> None:
        """Route commands as a batch, at most room() at a time: a client at its
        limit, or one that reads nothing, gets nothing more sent for it until
        its replies drain."""
        proxy = self.proxy
        while commands and not (self.closing or self.closed or proxy.draining):
            if self.writer is not None:
                self.writer.join()
                continue
            room = self.room()
            if room <= 0:
                self.flush()
                self._wake_at = self.limit() // 2
                self._wait_until(lambda: self.room() * 2 >= self.limit())
                self._wake_at = 0
                continue
            if len(commands) <= room:
                batch, commands = commands, None
            else:
                batch, commands = commands[:room], commands[room:]
            proxy.stats.total_requests += len(batch)
            self.busy = True
            proxy.router.dispatch_batch(self, batch, self.replies)
            self.busy = False

    def limit(self) -> int:
        """Requests this client may have in flight: ClientMaxInflight, fewer while its
        replies are big, so one client that sends much and reads nothing costs the
        nodes' output buffers and the proxy about ClientMaxInflightBytes."""
        cfg = self.proxy.cfg
        return max(1, min(cfg.ClientMaxInflight, cfg.ClientMaxInflightBytes // self.reply_size))

    def room(self) -> int:
        """How many more requests may go out now."""
        return self.limit() - len(self.replies)

    # -- state kept for the client --

    def update_mode(self):
        """After a change of protocol, login or state: which connections carry
        this client's commands, and whether it may take the router's fast path."""
        login, db = self.login, self.db
        self.via = self.proto if login is None and not db else Login(self.proto, *(login or (None, None)), db)
        grant, ps = self.grant, self.pubsub
        self.plain = (grant is not None and grant.unrestricted and self.mute is None
                      and not (self.txn is not None and self.txn.in_multi)
                      and not (ps is not None and self.proto == 2 and (ps.subscribed() or ps.outstanding())))

    def release(self):
        """Give back what this client held: a WATCH-pinned connection,
        subscriptions, MONITOR."""
        self.proxy.monitor.unwatch(self)
        if self.txn is not None:
            self.txn.close()
            self.txn = None
        if self.pubsub is not None:
            self.pubsub.close()
            self.pubsub = None
        self.update_mode()

    def push(self, data):
        """Out-of-band output (pub/sub messages), in order with queued replies."""
        self.replies.append(data)
        self.request_done()

    def hang_up(self):
        self._abort()

    def owes(self) -> bool:
        """Has it replies due or unwritten, or a command under way?"""
        return bool(self.replies) or self.busy or self.writer is not None

    def idle_for(self, now):
        """Seconds without input, for ClientTimeout; 0 while it waits on us
        (replies due, a blocking command, subscriptions), as Redis exempts those."""
        if self.busy or self.replies or self.pubsub is not None:
            return 0
        return now - self.active

    # -- writing --

    def request_done(self):
        if not self._scheduled:
            self._scheduled = True
            self._loop.run_callback(self.flush)

    def flush(self):
        """Write every reply that is ready at the head of the queue."""
        self._scheduled = False
        q = self.replies
        out = []
        errors = 0
        while q:
            r = q[0]
            if r.__class__ is not bytes:
                r = r.reply
                if r is None:
                    break
            if r and r[0] == 45:  # '-' (b"" stands for a reply that comes another way)
                errors += 1
            out.append(r)
            q.popleft()
        if out:
            stats = self.proxy.stats
            size = sum(map(len, out))
            stats.send_client_bytes += size
            # a big reply counts at once, small ones bring the estimate down over a few flushes
            self.reply_size = max(size // len(out), self.reply_size >> 2, 1)
            stats.errors += errors
            stats.total_responses += len(out)
            if self.writer is not None:  # the client is behind: queue the replies, no copying
                self._queue(out)
            else:
                self._write(out[0] if len(out) == 1 else b"".join(out))
        if len(q) <= self._wake_at:  # who waits on output (settle, room, closing) checks again
            self._wake()

    def settle(self):
        """Wait until every reply queued so far is in.  Whatever runs next on a
        private connection (a blocking pop, EXEC, WATCH) then comes after the
        client's earlier commands, which went over the shared links."""
        self.flush()
        self._wait_until(lambda: not self.replies)

    def _wake(self):
        if self._waiter is not None:
            self._waiter.set()

    def _wait_until(self, done, timeout=None):
        """Sleep until done() (checked whenever output drains), the client is gone, or timeout."""
        deadline = None if timeout is None else time.time() + timeout
        while not done() and not self.closed:
            self._waiter = Event()
            left = None if deadline is None else deadline - time.time()
            if left is not None and left <= 0 or not self._waiter.wait(left):
                break
        self._waiter = None

    def _write(self, data):
        if self.closed:
            return
        try:
            sent = self._send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._abort()
            return
        if sent < len(data):
            self.writer = greenlets.spawn(self._drain)
            self._queue([data[sent:]])

    def _queue(self, items):
        """Output the client has not taken yet; past the hard limit, it is closed."""
        if self.closed:
            return
        self.backlog.extend(items)
        self.backlog_bytes += sum(map(len, items))
        if self.backlog_bytes > HARD_LIMIT * self.proxy.cfg.ClientOutputLimit:
            self._too_slow()

    def _too_slow(self):
        log.warning("client %s: %d bytes of replies unread (ClientOutputLimit %d): closed",
                    self.peer(), self.backlog_bytes, self.proxy.cfg.ClientOutputLimit)
        self._abort()

    def _drain(self):
        """Write the backlog as the client reads it.  A client over
        ClientOutputLimit that reads nothing for STALL seconds is closed."""
        try:
            while self.backlog and not self.closed:
                data = memoryview(b"".join(self.backlog))
                self.backlog = []
                while data:
                    sent = 0
                    with gevent.Timeout(STALL, False):
                        sent = self.sock.send(data)
                    if not sent:
                        if self.backlog_bytes > self.proxy.cfg.ClientOutputLimit:
                            self._too_slow()
                            return
                        continue
                    data = data[sent:]
                    self.backlog_bytes -= sent
        except OSError:
            self._abort()
        finally:
            self.writer = None
        self._wake()

    def _abort(self):
        """The client is gone: stop writing; its reader sees the closed socket."""
        self.closed = True
        self.backlog = []
        self.backlog_bytes = 0
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- describing --

    def peer(self):
        a = self.address
        return "%s:%s" % (a[0], a[1]) if isinstance(a, tuple) else str(a or "unix")
