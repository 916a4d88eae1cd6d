"""MONITOR through the proxy.

Every command the proxy's clients send is printed as Redis prints it
(`+<time> [0 <client address>] "set" "k" "v"`), with the client's own address
rather than the proxy's links.  The commands a script runs on a node only that
node sees: while anyone watches, each master's own MONITOR is read too and its
script lines (`[0 lua]`) are passed on.  Passwords are shown as "(redacted)",
as Redis does.  Watching costs nothing until a client asks: the router checks
one list per batch.
"""

import logging
import time

from gevent.event import Event

from . import greenlets, private
from .resp import command

log = logging.getLogger("geproxy.monitor")

ESCAPES = {ord("\\"): b"\\\\", ord('"'): b'\\"', ord("\n"): b"\\n", ord("\r"): b"\\r", ord("\t"): b"\\t",
           7: b"\\a", 8: b"\\b"}
REDACTED = b'"(redacted)"'
SCRIPT_LINE = b" lua] "
READY_WITHIN = 2.0      # seconds MONITOR waits for a master's own MONITOR to start


class Monitor:
    def __init__(self, pool):
        self.pool = pool
        self.watchers = []          # sessions that sent MONITOR
        self.feeds = []             # greenlets reading the masters' MONITOR for script lines

    def watch(self, session):
        """Start showing this client everything; the masters' own MONITORs are
        running before its +OK, so no script line after that is missed."""
        if session not in self.watchers:
            self.watchers.append(session)
        if not self.feeds:
            started = [Event() for _ in self.pool.masters]
            self.feeds = [greenlets.spawn(self._feed, server, ready)
                          for server, ready in zip(self.pool.masters, started)]
            for ready in started:
                ready.wait(READY_WITHIN)

    def unwatch(self, session):
        if session in self.watchers:
            self.watchers.remove(session)
            if not self.watchers:
                for feed in self.feeds:
                    feed.kill(block=False)
                self.feeds = []

    def log(self, session, args):
        """One client command, to every watcher but that client."""
        line = b"+%.6f [0 %s] %s\r\n" % (time.time(), session.peer().encode(), b" ".join(shown(args)))
        for watcher in self.watchers:
            if watcher is not session:
                watcher.push(line)

    def _feed(self, server, ready):
        conn = None
        try:
            conn = private.PrivateConn(server, 2)
            conn.send(command("MONITOR"))
            conn.read_reply(timeout=READY_WITHIN)
            ready.set()
            while True:
                line = conn.read_reply(timeout=None)
                if SCRIPT_LINE in line[:40]:
                    for watcher in self.watchers:
                        watcher.push(line)
        except private.ERRORS as e:
            log.warning("MONITOR of %s ended: %s", server.addr, e)
        except Exception:  # a bug of ours: logged, and the feed ends as if the node had gone
            log.exception("MONITOR of %s ended", server.addr)
        finally:
            ready.set()
            if conn is not None:
                conn.close()


def shown(args):
    """The arguments as Redis's MONITOR shows them: quoted, escaped, passwords redacted."""
    out = [quote(a) for a in args]
    name = args[0].lower()
    if name == b"auth":
        out[1:] = [REDACTED] * (len(out) - 1)
    elif name == b"hello":
        for i in range(2, len(args) - 2):
            if args[i].lower() == b"auth":
                out[i + 1:i + 3] = [REDACTED, REDACTED]
    return out


def quote(arg):
    """Redis's sdscatrepr: printable bytes as they are, the rest escaped."""
    parts = [b'"']
    for b in arg:
        esc = ESCAPES.get(b)
        parts.append(esc if esc is not None else bytes((b,)) if 32 <= b < 127 else b"\\x%02x" % b)
    parts.append(b'"')
    return b"".join(parts)
