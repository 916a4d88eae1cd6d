"""Opening backend sockets, and a small blocking client for the proxy's own
conversations with nodes (topology refresh, the command table, handshakes).

Client traffic never goes through `Connection`; it goes through node links,
whose replies are forwarded unparsed.
"""

import socket
from typing import Optional

import gevent
import hiredis
from gevent import socket as gsocket

from .framer import Framer
from .resp import ProtocolError, command, decode
from .tls import NodeTLS, describe


class BackendError(Exception):
    """A node could not be reached, or refused the handshake."""


def dial(host: str, port: int, timeout: float, keepalive: int = 0, tls: Optional[NodeTLS] = None):
    """A connected TCP socket with NODELAY (and keepalive when asked); with
    `tls`, a TLS socket whose handshake is done.  Connecting and the handshake
    are each bounded by `timeout` (5 s when it is 0); a failed handshake is a
    BackendError like a refused connection, so it counts as the node's failure."""
    limit = timeout or 5.0
    try:
        sock = gsocket.create_connection((host, port), timeout=limit)
    except (OSError, socket.timeout) as e:
        raise BackendError("cannot connect to %s:%d: %s" % (host, port, e.strerror or e)) from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if keepalive:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_KEEPIDLE"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, keepalive)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, max(1, keepalive // 3))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
    if tls is not None:
        sock = _handshake(sock, tls, host, port, limit)
    sock.settimeout(timeout or None)
    return sock


def _handshake(sock, tls, host, port, limit):
    """The TLS handshake within `limit` seconds in all (a node that trickles
    its handshake must not hold a dial for longer)."""
    try:
        with gevent.Timeout(limit, socket.timeout("timed out after %gs" % limit)):
            return tls.wrap(sock)
    except (OSError, socket.timeout, ValueError) as e:
        sock.close()
        raise BackendError("TLS handshake with %s:%d failed: %s" % (host, port, describe(e))) from None


def handshake_commands(proto, user, password, db=0, readonly=False):
    """What a fresh backend connection must say first: HELLO 3 for RESP3 links
    (with AUTH when a password is set), plain AUTH otherwise, SELECT for another
    database, READONLY on cluster replicas."""
    cmds = []
    if proto == 3:
        args = ["HELLO", "3"]
        if password:
            args += ["AUTH", user or "default", password]
        cmds.append(command(*args))
    elif password:
        cmds.append(command("AUTH", user, password) if user else command("AUTH", password))
    if db:
        cmds.append(command("SELECT", db))
    if readonly:
        cmds.append(command("READONLY"))
    return cmds


def read_replies(sock, count, what):
    """Read the replies to `count` commands, cut by the framer and decoded by
    hiredis; an error reply raises BackendError."""
    framer = Framer()
    raws = []
    while len(raws) < count:
        try:
            data = sock.recv(65536)
        except (OSError, socket.timeout) as e:   # a TLS alert too: a refused client certificate
            raise BackendError("%s: %s" % (what, describe(e))) from None
        if not data:
            raise BackendError("%s: connection closed" % what)
        raws.extend(framer.feed(data))
    if len(raws) > count or framer.pending():
        raise BackendError("%s: more replies than commands" % what)
    replies = []
    for raw in raws:
        reply = decode(raw)
        if isinstance(reply, hiredis.ReplyError):
            raise BackendError("%s: %s" % (what, reply))
        replies.append(reply)
    return replies


class Connection:
    """A blocking request/response connection to one node, for the proxy's own use."""

    def __init__(self, host: str, port: int, timeout: float = 2.0, user: str = "", password: str = "",
                 tls: Optional[NodeTLS] = None):
        self.addr = "%s:%d" % (host, port)
        self.sock = dial(host, port, timeout, tls=tls)
        try:
            cmds = handshake_commands(2, user, password)
            if cmds:
                self.sock.sendall(b"".join(cmds))
                read_replies(self.sock, len(cmds), "%s: handshake" % self.addr)
        except BaseException:
            self.close()
            raise

    def execute(self, *args):
        try:
            self.sock.sendall(command(*args))
        except OSError as e:
            raise BackendError("%s: %s" % (self.addr, e)) from None
        try:
            return read_replies(self.sock, 1, self.addr)[0]
        except ProtocolError as e:
            raise BackendError("%s: %s" % (self.addr, e)) from None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
