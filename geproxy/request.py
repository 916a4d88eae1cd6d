"""A request in flight: the bytes to send, and where its reply goes.

The reply arrives on a node link's reader greenlet.  Redirections (MOVED, ASK,
TRYAGAIN, and NOSCRIPT for a script the proxy knows) are followed from there,
without waking the client's session; only a final reply is handed to the owner.
"""

import logging
import time

from .redirect import ASKING as ASKING_RAW, RETRIED
from .resp import error

log = logging.getLogger("geproxy.request")

NON_LOCAL = b"non local key"    # "Script attempted to access a non local key in a cluster node"


class Request:
    __slots__ = ("raw", "reply", "owner", "slot", "redirects", "via", "started", "command")
    script = False                  # node links write nothing behind a script (see Script)

    def __init__(self, owner, raw, slot, via):
        self.raw = raw
        self.reply = None
        self.owner = owner          # has request_done(), sender and via: the session, or a Gather
        self.slot = slot
        self.redirects = 0
        self.via = via              # which node link: RESP version, or a user's Login (login.py)
        self.started = 0.0          # perf_counter() when latency monitors measure it

    def measure(self, command):
        self.started = time.perf_counter()
        self.command = command

    def done(self, reply, node=None):
        """Take a reply; `node`, the server that sent it, is where a redirect
        came from.  (Node links set .reply directly for non-error replies.)"""
        if reply[0] == 45 and reply[1:4] in RETRIED:
            sender = self.owner.sender
            if sender is not None and sender.redirect(self, reply, node):
                return
        self.reply = reply
        self.owner.request_done()


class Script(Request):
    """EVAL*/FCALL*: it may run long, so a node link writes nothing behind it
    until its reply is in (nodelink.py)."""

    __slots__ = ()
    script = True


class Roaming(Script):
    """A script or function declaring no keys (EVAL ... 0).  Redis runs it on
    one node, which refuses keys it does not own; a direct cluster client
    would have to guess the node.  The proxy tries the masters in turn until
    one runs it: the node that refused ran nothing from the refused call on
    (Redis checks a command's keys before running it), and the next try
    starts the script afresh there."""

    __slots__ = ("untried",)

    def __init__(self, owner, raw, via, untried):
        Script.__init__(self, owner, raw, None, via)
        self.untried = untried      # masters not tried yet, next last

    def done(self, reply, node=None):
        if reply[0] == 45 and self.untried and NON_LOCAL in reply[:80]:
            server = self.untried.pop()
            if not (server.fail_until and server.is_failed()):
                server.link(self.via).send(self)
                return
        Script.done(self, reply, node)


class Muted:
    """A reply the client asked not to get (CLIENT REPLY OFF|SKIP): it holds
    its place in the client's order until the real one is in, then is empty."""

    __slots__ = ("inner",)

    def __init__(self, inner):
        self.inner = inner

    @property
    def reply(self):
        inner = self.inner
        return b"" if inner.__class__ is bytes or inner.reply is not None else None


class _Discard:
    """Owner of requests the proxy sends for itself and whose reply it drops:
    the ASKING before a request sent after an ASK, a SCRIPT LOAD before a retried EVALSHA."""

    sender = None

    def request_done(self):
        pass


DISCARD = _Discard()
ASKING = Request(DISCARD, ASKING_RAW, None, None)


class Gather:
    """A client command answered by several node requests (its parts), merged
    into one reply when the last part is in: MGET over slots, DBSIZE over
    masters, and the like."""

    __slots__ = ("owner", "sender", "via", "parts", "pending", "merge", "reply")

    def __init__(self, owner, merge):
        self.owner = owner
        self.sender = owner.sender
        self.via = owner.via
        self.parts = []
        self.pending = 1            # held until every part is added (see close)
        self.merge = merge          # [part replies] -> reply bytes
        self.reply = None

    def part(self, raw, slot):
        req = Request(self, raw, slot, self.via)
        self.parts.append(req)
        self.pending += 1
        return req

    def close(self):
        """All parts are sent: from now on the last reply completes the gather."""
        self.request_done()
        return self

    def request_done(self):
        self.pending -= 1
        if self.pending == 0:
            try:
                self.reply = self.merge([p.reply for p in self.parts])
            except Exception:  # a reply of a shape we did not expect: this client's error only
                log.exception("cannot merge %r", [p.reply[:60] for p in self.parts])
                self.reply = error("ERR geproxy could not combine the nodes' replies (logged)")
            self.parts = None  # parts point back at us: break the cycle, free by refcount, not by GC
            self.owner.request_done()
