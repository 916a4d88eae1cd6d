"""A node link: one multiplexed, pipelined connection to a node, shared by
every session.

Sessions append requests; the first append of a loop turn schedules a flush
that runs once the hub gets control, so every request queued in that turn,
from any client, leaves in one write.  A reader greenlet cuts the reply stream
at reply boundaries (framer.py) and hands each reply, unparsed, to the request
at the head of the in-flight queue: Redis answers a connection in order, so
FIFO is the whole bookkeeping.  The one exception is a script: it is written
alone, on a connection with nothing else in flight, and nothing from other
clients is written behind it (their GET must not wait for a script they never
asked for); one that runs long gets its connection to itself while new
requests go on another (see _set_aside).
"""

import logging
import socket
import time
from collections import deque

import gevent

from . import greenlets, gsock, tls
from .connection import BackendError, dial, handshake_commands, read_replies
from .framer import Framer
from .login import credentials
from .redirect import RETRIED
from .resp import ProtocolError, error

log = logging.getLogger("geproxy.link")

IDLE, CONNECTING, READY = range(3)
READ_SIZE = 65536
EAGER_READ = 4096   # a read this big says more is coming: try the next read before waiting
BUSY_AFTER = 1.0    # seconds a script may hold a connection before new requests go around it
_ERRORS = (BackendError, OSError, ProtocolError, socket.timeout, ValueError)


class NodeLink:
    def __init__(self, server, via):
        self.server = server
        self.via = via             # how its connection logs in (login.py)
        self.queue = []            # requests not yet written
        self.inflight = deque()    # written, waiting for their reply, in order
        self.state = IDLE
        self.sock = None
        self.reader = None
        self.writing = False       # a greenlet is finishing a partial write
        self.scheduled = False
        self.progress = 0.0        # when the link last sent to an idle node or heard from it
        self.aside = {}            # socket -> reader: connections left to a long script (see _set_aside)
        self.scripts = 0           # scripts in the queue
        self.holding = None        # the script in flight: nothing is written behind it
        self.held_since = 0.0
        self.recheck = False       # a flush is timed for when the script has run BUSY_AFTER
        self._loop = gevent.get_hub().loop

    def send(self, req):
        """Queue a request; its `done()` is called with the reply bytes."""
        self.queue.append(req)
        if req.script:
            self.scripts += 1
        if not self.scheduled:
            self.scheduled = True
            self._loop.run_callback(self._flush)

    def kick(self):
        """Flush soon, if anything waits (a LinkHold released, a script done)."""
        if self.queue and not self.scheduled:
            self.scheduled = True
            self._loop.run_callback(self._flush)

    def close(self):
        if self.state != IDLE:
            self._fail("link closed")
        for sock, reader in list(self.aside.items()):
            reader.kill(block=False)
            self._close_aside(sock)

    # -- writing: from a hub callback, never blocking the hub --

    def _flush(self):
        self.scheduled = False
        if self.state == IDLE:
            if self.queue:
                self.state = CONNECTING
                greenlets.spawn(self._connect)
            return
        if self.state != READY or self.writing or not self.queue or self.server.holds:
            return
        if self.holding is not None:
            batch = self._followers()
            if not batch:
                if time.monotonic() - self.held_since > BUSY_AFTER:
                    self._set_aside()
                else:
                    self._recheck_later()
                return
            if self.queue:
                self._recheck_later()
        else:
            batch, self.queue = self.queue, []
            if self.scripts:
                batch = self._script_barrier(batch)
                if not batch:
                    return
        if not self.inflight:
            self.progress = time.monotonic()  # ServerTimeout counts from here, not from idle time
        self.inflight.extend(batch)
        data = b"".join([r.raw for r in batch])
        server = self.server
        server.requests += len(batch)
        server.send_bytes += len(data)
        try:
            sent = gsock.sender(self.sock)(data)
        except BlockingIOError:
            sent = 0
        except OSError as e:
            self._fail(str(e))
            return
        if sent < len(data):
            self.writing = True
            greenlets.spawn(self._write_rest, data[sent:])

    def _script_barrier(self, batch):
        """What of `batch` to write now: a script goes alone on a connection with
        nothing in flight, for Redis sends no reply on a connection while a
        script runs on it, even replies to commands it ran before the script.
        The rest stays queued, behind the script."""
        for i, req in enumerate(batch):
            if req.script:
                break
        else:
            self.scripts = 0
            return batch
        if i or self.inflight:  # first what comes before it, then wait for their replies
            self.queue = batch[i:] + self.queue
            return batch[:i]
        self.scripts -= 1
        self.queue = batch[1:] + self.queue
        self.holding, self.held_since = req, time.monotonic()
        self.kick()  # its client's next requests follow it now; the others wait
        return batch[:1]

    def _followers(self):
        """While a script holds the connection, its own client's next requests
        (those queued before anyone else's) follow it there, as on one Redis
        connection; other clients' wait."""
        owner, queue = self.holding.owner, self.queue
        n = 0
        while n < len(queue) and queue[n].owner is owner:  # up to another's: order on a link is kept
            n += 1
        mine, self.queue = queue[:n], queue[n:]
        for req in mine:
            if req.script:
                self.scripts -= 1
                self.holding = req
        return mine

    def _recheck_later(self):
        """Requests wait behind a script: look again when it has run BUSY_AFTER."""
        if not self.recheck:
            self.recheck = True
            greenlets.spawn_later(BUSY_AFTER - (time.monotonic() - self.held_since) + 0.01, self._recheck)

    def _recheck(self):
        self.recheck = False
        self._flush()

    def _write_rest(self, data):
        """The socket buffer was full: finish in a greenlet, then flush what queued meanwhile."""
        try:
            self.sock.sendall(data)
        except Exception as e:
            self._fail(*_why(e))
            return
        finally:
            self.writing = False
        self._flush()

    def _connect(self):
        server = self.server
        cfg = server.cfg
        try:
            sock = dial(server.host, server.port, cfg.ServerTimeout, cfg.KeepAlive, tls.for_pool(cfg))
            cmds = handshake_commands(*credentials(self.via, cfg), readonly=server.role == "slave" and server.cluster)
            if cmds:
                try:
                    sock.sendall(b"".join(cmds))
                    read_replies(sock, len(cmds), "%s: handshake" % server.addr)
                except BaseException:
                    sock.close()
                    raise
        except Exception as e:  # whatever it is, the link must not stay CONNECTING
            self._fail(*_why(e))
            return
        server.connect += 1
        server.connections += 1
        self.sock = sock
        self.state = READY
        self.reader = greenlets.spawn(self._read_guarded, sock, self.inflight)
        self._flush()

    # -- reading: cut replies, complete requests in order --

    def _set_aside(self):
        """The request at the head is a script that has run for BUSY_AFTER: leave
        this connection to the requests already written on it (they follow the
        script, as on any Redis connection) and send new ones on a fresh
        connection, where Redis answers them, or -BUSY, as it would any client.
        SCRIPT KILL never queues here: it goes on connections of its own."""
        log.info("%s: a script has run for over %gs; new requests go on a new connection",
                 self.server.addr, BUSY_AFTER)
        self.aside[self.sock] = self.reader
        self.sock = self.reader = self.holding = None
        self.inflight = deque()
        self.state = IDLE
        self._flush()

    def _close_aside(self, sock):
        if self.aside.pop(sock, None) is not None:
            sock.close()
            self.server.connections -= 1

    def _read_guarded(self, sock, inflight):
        """The reader never dies quietly: whatever stops it (the node, or a bug
        of ours), the requests it held get an error, the connection is closed
        and the next request dials again."""
        try:
            self._read(sock, inflight)
        except Exception as e:
            why, bug = _why(e)
            if self.sock is sock:
                self._fail(why, bug)
            elif sock in self.aside:
                log.warning("set-aside link to %s failed: %s", self.server.addr, why, exc_info=bug)
                self._close_aside(sock)
                lost = list(inflight)
                inflight.clear()
                _answer_all(lost, "ERR geproxy: server %s failed: %s" % (self.server.addr, why))

    def _read(self, sock, inflight):
        server = self.server
        feed = Framer().feed
        recv, wait_readable, readable = gsock.reader(sock)
        eager = False               # under a stream of replies, read before waiting
        last = time.monotonic()
        limit = sock.gettimeout()   # ServerTimeout (None: no limit)
        shortened = False
        while True:
            try:
                if not eager:
                    wait_readable(readable)
                data = recv(READ_SIZE)
            except BlockingIOError:
                eager = False
                continue
            except socket.timeout:
                # ServerTimeout: no progress for that long while requests are in flight
                since = self.progress if self.sock is sock else last
                waited = time.monotonic() - since
                if inflight and waited >= limit:
                    raise BackendError("no reply within ServerTimeout") from None
                # The wait began before the oldest request was sent: wake when its time
                # is up, not a whole ServerTimeout later.
                shortened = bool(inflight)
                sock.settimeout(max(limit - waited, 0.01) if shortened else limit)
                continue
            if shortened:
                shortened = False
                sock.settimeout(limit)
            if not data:
                raise BackendError("connection closed by server")
            eager = len(data) >= EAGER_READ
            server.recv_bytes += len(data)
            self.progress = last = time.monotonic()
            if len(data) == READ_SIZE:
                gevent.sleep(0)  # more is waiting: let sessions flush and others run first
            replies = feed(data)
            if not replies:
                continue
            for reply in replies:
                kind = reply[0]
                if kind == 62:  # '>': a push (e.g. an invalidation) is nobody's reply here
                    log.debug("%s: push on a shared link dropped: %r", server.addr, reply[:60])
                    continue
                try:
                    req = inflight.popleft()
                except IndexError:
                    raise ProtocolError("reply without a request") from None
                if req is self.holding:  # the script is done: what waited behind it may go
                    self.holding = None
                    self.kick()
                try:
                    if kind == 45:  # '-': errors may be redirections, let the request decide
                        if req.started and reply[1:4] not in RETRIED:
                            server.latency.record(server.addr, req.command, req.started)
                        req.done(reply, server)
                    else:
                        if req.started:
                            server.latency.record(server.addr, req.command, req.started)
                        req.reply = reply
                        req.owner.request_done()
                except Exception:  # one request's trouble: that request fails, the link goes on
                    _refuse(req, server)
            server.responses += len(replies)
            server.failures = 0
            if self.scripts and not inflight:  # a script may go now
                self.kick()
            if not inflight and sock in self.aside:  # a set-aside connection has done its part
                self._close_aside(sock)
                return

    def _fail(self, why, bug=None):
        """The connection is gone: every request on it gets an error, the server
        counts a failure, and the next send dials again.  Logged once, with the
        traceback of `bug` when the cause was an exception of ours."""
        server = self.server
        sock, reader = self.sock, self.reader
        self.sock = self.reader = None
        self.state = IDLE
        if sock is not None:
            sock.close()
            server.connections -= 1
        if reader is not None and reader is not gevent.getcurrent():
            reader.kill(block=False)
        lost = list(self.inflight) + self.queue
        self.inflight.clear()
        self.queue = []
        self.holding, self.scripts = None, 0
        if lost or bug is not None:
            log.warning("link to %s failed: %s", server.addr, why, exc_info=bug)
        if lost:
            server.note_failure()
        _answer_all(lost, "ERR geproxy: server %s failed: %s" % (server.addr, why))


def _answer_all(requests, why):
    reply = error(why)
    for req in requests:
        try:
            req.done(reply)
        except Exception:
            log.exception("cannot answer a request lost with the link (%s)", why)


def _why(e):
    """What to tell the clients about `e`, and the exception itself when it
    is not a connection's fate but a bug of ours (its traceback is logged)."""
    if isinstance(e, _ERRORS):
        return str(e) or e.__class__.__name__, None
    return "internal error (%s: %s)" % (e.__class__.__name__, e), e


def _refuse(req, server):
    """Handing a reply to its request raised: log it, and make sure the
    request is answered (with an error) unless it already was."""
    log.exception("%s: cannot hand a reply to its request", server.addr)
    if req.reply is None:
        req.reply = error("ERR geproxy: internal error on the reply from %s (logged)" % server.addr)
        try:
            req.owner.request_done()
        except Exception:
            log.exception("%s: cannot hand an error to a request", server.addr)
