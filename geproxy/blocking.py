"""Blocking commands (BLPOP, BLMOVE, BZPOPMIN, XREAD BLOCK, WAIT, ...): run on a
private connection, so a client waiting for minutes never holds up the shared
node links.

The session's greenlet waits here, as Redis makes the client wait: later
commands of the same client run after this one.  While waiting it also
watches the client's socket: a client that disconnects releases the backend
connection at once (closed, never returned to the pool mid-command).
"""

from gevent import select

from . import private
from . import redirect as redirects
from .clientcmd import Unblocked
from .redirect import ASKING, MAX_REDIRECTS
from .resp import SLOT_DOWN, command, error, server_failed
from .server import LinkHold
from .slots import key_slot

STASH_LIMIT = 1 << 20   # input kept from a blocked client; past it we stop reading (and watching) it


class ClientGone(Exception):
    pass


def call(pool, session, raw, slot, before=()):
    """Run one blocking command (after the commands in `before`, whose replies
    are dropped); returns its reply bytes."""
    session.settle()
    server = pool.master_for(slot)
    asking = False
    reply = b""
    for _ in range(MAX_REDIRECTS + 1):
        if server is None:
            return SLOT_DOWN
        if server.is_failed():
            return server_failed(server)
        hold = LinkHold(server, session.id)
        try:
            conn = private.checkout(server, session.via)
        except Exception as e:
            hold.release()
            return private.failed(server, e)
        try:
            lead = ([ASKING] if asking else []) + list(before)
            try:
                hold.wait_turn()
                conn.send(b"".join(lead) + raw, len(lead) + 1)
            finally:
                hold.release()
            for _ in lead:
                wait(conn, session)
            session.blocked = True
            try:
                reply = wait(conn, session)
            finally:
                session.blocked = False
        except Unblocked as e:  # CLIENT UNBLOCK: the connection is mid-command, so it is not reused
            conn.close()
            if e.how == "error":
                return error("UNBLOCKED client unblocked via CLIENT UNBLOCK")
            return b"_\r\n" if session.proto == 3 else b"*-1\r\n"
        except ClientGone:
            conn.close()
            session.closing = True
            return error("ERR client gone")
        except Exception as e:  # the node's doing or ours: this command fails, the connection goes
            conn.close()
            return private.failed(server, e)
        conn.release()
        kind = redirects.kind(reply)
        if kind is None or kind == redirects.TRYAGAIN:
            return reply
        to = redirects.parse(reply, server.addr)
        if to is None:
            return redirects.malformed(reply, server.addr)
        if not to.ask:
            pool.moved(to.slot, to.addr)
        asking = to.ask
        server = pool.server(to.addr)
    return redirects.too_many(reply)


def wait_replicas(pool, session, raw):
    """WAIT through a proxy: the client's writes went over shared links, so WAIT
    on its own connection would see none.  It runs on a private connection to
    the master the client last wrote to, right after a write of ours there that
    no one can see (a key of that slot set and deleted in one transaction):
    replication is in order, so when replicas have it they have the client's
    writes too."""
    slot = session.last_write_slot
    if slot is None:
        return call(pool, session, raw, None)
    key = b"__geproxy:wait:{%s}" % slot_tag(slot)
    marker = [command("MULTI"), command("SET", key, "1"), command("DEL", key), command("EXEC")]
    return call(pool, session, raw, slot, before=marker)


_TAGS = {}


def slot_tag(slot):
    """A short hashtag whose slot is `slot`."""
    tag = _TAGS.get(slot)
    if tag is None:
        i = 0
        while key_slot(b"%d" % i) != slot:
            i += 1
        tag = _TAGS[slot] = b"%d" % i
    return tag


def wait(conn, session):
    """The next reply from `conn`, with no time limit (the command has its own),
    unless the client hangs up first.  What the client sends meanwhile is kept
    for after this command, as Redis would have it wait."""
    client = session.sock
    watch_client = True
    while True:
        reply = conn.take_reply()
        if reply is not None:
            return reply
        fds = [conn.sock, client] if watch_client else [conn.sock]
        readable, _, _ = select.select(fds, [], [])
        if watch_client and client in readable:
            try:
                data = client.recv(65536)
            except OSError:
                data = b""
            if not data:
                raise ClientGone()
            session.stash.append(data)
            watch_client = sum(map(len, session.stash)) < STASH_LIMIT
        if conn.sock in readable:
            conn.fill(None)
