"""Blocking commands (BLPOP, BLMOVE, BZPOPMIN, XREAD BLOCK, WAIT, ...): run on a
private connection, so a client waiting for minutes never holds up the shared
node links.

The session's greenlet waits here, as Redis makes the client wait: later
commands of the same client run after this one.  While waiting it also
watches the client's socket: a client that disconnects releases the backend
connection at once (closed, never returned to the pool mid-command).
"""

import socket

from gevent import select

from . import private
from .resp import error

MAX_REDIRECTS = 5


class ClientGone(Exception):
    pass


def call(router, session, raw, slot):
    """Run one blocking command; returns its reply bytes."""
    pool = router.pool
    server = pool.slots[slot] if slot is not None else pool.any_master()
    asking = False
    for _ in range(MAX_REDIRECTS + 1):
        if server is None:
            return error("CLUSTERDOWN Hash slot not served")
        if server.is_failed():
            return error("ERR geproxy: server %s is marked failed, retrying in a moment" % server.addr)
        try:
            conn = private.checkout(server, session.proto)
        except private.ERRORS as e:
            return error("ERR geproxy: %s" % e)
        try:
            conn.send((b"*1\r\n$6\r\nASKING\r\n" if asking else b"") + raw, 2 if asking else 1)
            if asking:
                wait(conn, session.sock)
            reply = wait(conn, session.sock)
        except ClientGone:
            conn.close()
            session.closing = True
            return error("ERR client gone")
        except private.ERRORS as e:
            conn.close()
            return error("ERR geproxy: server %s failed: %s" % (server.addr, e))
        conn.release()
        if reply[:7] == b"-MOVED " or reply[:5] == b"-ASK ":
            words = reply[1:].split()
            addr = words[2].decode()
            asking = words[0] == b"ASK"
            if not asking:
                pool.moved(int(words[1]), addr)
            server = pool.server(addr)
            continue
        return reply
    return error("ERR geproxy: too many cluster redirections")


def wait(conn, client):
    """The next reply from `conn`, with no time limit (the command has its own),
    unless the client hangs up first."""
    watch_client = True
    while True:
        reply = conn.take_reply()
        if reply is not None:
            return reply
        fds = [conn.sock, client] if watch_client else [conn.sock]
        readable, _, _ = select.select(fds, [], [])
        if watch_client and client in readable:
            try:
                peek = client.recv(1, socket.MSG_PEEK)
            except OSError:
                peek = b""
            if not peek:
                raise ClientGone()
            watch_client = False  # pipelined commands: they wait their turn
        if conn.sock in readable:
            conn.fill(None)
