"""Opening backend sockets, and a small blocking client for the proxy's own
conversations with nodes (topology refresh, the command table, handshakes).

Client traffic never goes through `Connection`; it goes through node links,
whose replies are forwarded unparsed.
"""

import socket

import hiredis
from gevent import socket as gsocket

from .framer import Framer
from .resp import ProtocolError, command, decode


class BackendError(Exception):
    """A node could not be reached, or refused the handshake."""


def dial(host, port, timeout, keepalive=0):
    """A connected TCP socket with NODELAY (and keepalive when asked)."""
    try:
        sock = gsocket.create_connection((host, port), timeout=timeout or 5.0)
    except (OSError, socket.timeout) as e:
        raise BackendError("cannot connect to %s:%d: %s" % (host, port, e.strerror or e)) from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if keepalive:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_KEEPIDLE"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, keepalive)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, max(1, keepalive // 3))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
    sock.settimeout(timeout or None)
    return sock


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
        except (OSError, socket.timeout) as e:
            raise BackendError("%s: %s" % (what, e)) from None
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

    def __init__(self, host, port, timeout=2.0, user="", password=""):
        self.addr = "%s:%d" % (host, port)
        self.sock = dial(host, port, timeout)
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
