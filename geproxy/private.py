"""Private backend connections: one client's own connection to a node, for
what Redis ties to a connection (blocking pops, MULTI/EXEC with WATCH,
subscriptions).  Everything else shares the node links.

A connection goes back to its server's idle list only after a clean
request/reply exchange; one left in an unknown state (client gone mid-command,
a timeout) is closed instead.
"""

import logging
import socket
from collections import deque

import gevent

from . import greenlets, gsock, tls
from .connection import BackendError, dial, handshake_commands, read_replies
from .framer import Framer
from .login import credentials
from .resp import ProtocolError, error

log = logging.getLogger("geproxy.private")

PING = b"*1\r\n$4\r\nPING\r\n"
MAX_IDLE = 16  # idle private connections kept per server and via (protocol, login)
DEFAULT = object()  # the socket's own timeout: ServerTimeout


class PrivateConn:
    def __init__(self, server, via):
        self.server = server
        self.via = via              # how it logs in (login.py); a HELLO after WATCH changes it
        cfg = server.cfg
        self.sock = dial(server.host, server.port, cfg.ServerTimeout, cfg.KeepAlive, tls.for_pool(cfg))
        self.framer = Framer()
        self.ready = deque()        # whole replies received, not yet taken
        try:
            # At least one round trip: once it is answered the node has accepted the
            # connection, so what is sent next is not read after commands other
            # connections sent later (a BLPOP overtaken by someone's LPUSH).
            cmds = handshake_commands(*credentials(via, cfg)) or [PING]
            self.sock.sendall(b"".join(cmds))
            read_replies(self.sock, len(cmds), "%s: handshake" % server.addr)
        except BaseException:
            self.sock.close()
            raise
        server.connect += 1
        server.connections += 1

    def send(self, data, count=1):
        self.sock.sendall(data)
        self.server.requests += count
        self.server.send_bytes += len(data)

    def take_reply(self):
        """A whole reply already received, raw, or None."""
        if self.ready:
            self.server.responses += 1
            return self.ready.popleft()
        return None

    def fill(self, timeout=DEFAULT):
        """Receive once.  `timeout`: seconds, None for no limit, or ServerTimeout."""
        if timeout is not DEFAULT:
            self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise BackendError("%s: no reply within ServerTimeout" % self.server.addr) from None
        if not data:
            raise BackendError("%s: connection closed by server" % self.server.addr)
        pending = getattr(self.sock, "pending", None)
        while pending and pending():  # TLS: take what was decrypted, or select() would not see it
            data += self.sock.recv(65536)
        self.server.recv_bytes += len(data)
        self.ready.extend(self.framer.feed(data))

    def read_reply(self, timeout=DEFAULT):
        while True:
            reply = self.take_reply()
            if reply is not None:
                return reply
            self.fill(timeout)

    def call(self, data, count=1):
        """Send, then read `count` replies."""
        self.send(data, count)
        return [self.read_reply() for _ in range(count)]

    def release(self):
        """Back to the idle list, for the next client."""
        self.sock.settimeout(self.server.cfg.ServerTimeout or None)
        idle = self.server.idle_private.setdefault(self.via, [])
        if self.ready or self.framer.pending() or len(idle) >= MAX_IDLE:
            self.close()
        else:
            idle.append(self)

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
            self.server.connections -= 1


def checkout(server, via):
    """An idle private connection to `server`, or a new one, logged in as `via` says."""
    idle = server.idle_private.get(via)
    while idle:
        conn = idle.pop()
        if conn.sock is not None and _quiet(conn.sock):
            return conn
        conn.close()
    return PrivateConn(server, via)


def _quiet(sock) -> bool:
    """Is an idle connection still open with nothing unasked on it?  A node
    that closed it while idle (restarted, CLIENT KILL, its `timeout`) leaves an
    end of stream that a reused connection would give the next client as its
    error: a peek, one syscall, tells before it is handed out."""
    try:
        gsock.plain(sock).recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        return False            # b"": closed; bytes: something nobody asked for
    except BlockingIOError:
        return True
    except OSError:
        return False


ERRORS = (BackendError, OSError, ProtocolError, socket.timeout)


def failed(server, e: BaseException, prefix: str = "") -> bytes:
    """The client's error reply for a private connection that broke (the
    caller closes it).  A connection error is the node's doing; anything else
    is a bug of ours and is logged with its traceback, once, here."""
    if isinstance(e, ERRORS):
        log.info("private connection to %s failed: %s", server and server.addr, e)
    else:
        log.error("private connection to %s: internal error", server and server.addr, exc_info=e)
        e = "internal error (%s: %s)" % (e.__class__.__name__, e)
    if server is None:
        return error("ERR geproxy: %s%s" % (prefix, e))
    return error("ERR geproxy: %sserver %s failed: %s" % (prefix, server.addr, e))


CALL_TIMEOUT = 5.0      # seconds a node may take to answer call_each


def call_each(servers, raw, via=2, keep=True):
    """Send `raw` to every server, each on a private connection, in parallel;
    their replies (an error reply for a node that failed), in order.  For what
    must not queue behind other clients' requests (SCRIPT KILL behind the very
    script it stops) or concerns every node (CONFIG SET).  keep=False closes
    the connections after (for what is asked now and then, like INFO)."""
    jobs = [greenlets.spawn(_call_one, server, raw, via, keep) for server in servers]
    gevent.joinall(jobs)
    return [job.value for job in jobs]


def _call_one(server, raw, via, keep):
    try:
        conn = checkout(server, via)
    except Exception as e:
        return failed(server, e)
    try:
        conn.send(raw)
        reply = conn.read_reply(timeout=CALL_TIMEOUT)
    except Exception as e:
        conn.close()
        return failed(server, e)
    if keep:
        conn.release()
    else:
        conn.close()
    return reply
