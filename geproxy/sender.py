"""The sending layer, below the router: from a slot (or a chosen node) to a
node link, and on from a reply that says "not here".

The router decides what a command needs; the modules that answer a command
with several node requests (multikey, fanout) or hold a client's state
(transaction, pubsub, blocking) send through here too.  Nothing here knows a
command's meaning: a request is raw bytes, a slot and an owner to call back.
Redirections (MOVED, ASK, TRYAGAIN, and NOSCRIPT for a script body seen
before) are followed here, from the node link's reader, without waking the
client's session.
"""

import logging
import random


try:  # CPython's own SHA-1: hashlib would load OpenSSL, about 4 MiB of RSS for one hash
    from _sha1 import sha1
except ImportError:  # another Python
    from hashlib import sha1

from . import greenlets, redirect as redirects
from .redirect import MAX_REDIRECTS
from .request import ASKING, DISCARD, Request, Roaming
from .resp import NOT_READY, SLOT_DOWN, command, decode, server_failed

log = logging.getLogger("geproxy.sender")

MAX_SCRIPTS = 10000      # bodies remembered for NOSCRIPT recovery


class Scripts:
    """Script bodies seen in SCRIPT LOAD and EVAL, by sha1, so a node that
    lacks one (it ran on another master, a failover, a restart) can be given
    it on NOSCRIPT."""

    def __init__(self):
        self.bodies = {}

    def remember(self, body):
        sha = sha1(body).hexdigest().encode()
        if sha not in self.bodies:
            if len(self.bodies) >= MAX_SCRIPTS:
                self.bodies.pop(next(iter(self.bodies)))
            self.bodies[sha] = body

    def get(self, sha):
        return self.bodies.get(sha.lower())


class Sender:
    def __init__(self, pool, latency):
        self.pool = pool
        self.latency = latency      # LatencyMonitors: requests are timed only while some exist
        self.scripts = Scripts()

    def server_for(self, slot, readonly=False):
        """The master owning `slot`, or for a read the member its read group picks."""
        reads = self.pool.reads
        if readonly and reads is not None and reads[slot] is not None:
            return reads[slot].pick()
        return self.pool.slots[slot]

    # -- a client's request: returns the Request, or error bytes when it cannot go --

    def send(self, owner, raw, slot, name=None, readonly=False, cls=Request):
        server = self.server_for(slot, readonly)
        if server is None:
            return SLOT_DOWN
        return self.send_to(owner, raw, server, slot, name, cls)

    def send_any(self, owner, raw, name=None):
        server = self.pool.any_master()
        if server is None:
            return NOT_READY
        return self.send_to(owner, raw, server, None, name)

    def send_to(self, owner, raw, server, slot, name=None, cls=Request):
        return self._launch(cls(owner, raw, slot, owner.via), server, name)

    def send_roaming(self, owner, raw, name=None):
        """A script declaring no keys: the home master first, then the others
        while the node says the script touched a key it does not own."""
        home = self.pool.home()
        if home is None:
            return NOT_READY
        masters = [s for s in self.pool.masters if s is not home]
        random.shuffle(masters)
        masters.append(home)
        req = Roaming(owner, raw, owner.via, masters)
        return self._launch(req, masters.pop(), name)   # home first; the others stay untried

    def _launch(self, req, server, name):
        """Onto the server's link, timed as `name` by the latency monitors (None:
        untimed); a server marked failed answers at once instead."""
        if server.fail_until and server.is_failed():
            return server_failed(server)
        if name and self.latency:
            req.measure(name)
        server.link(req.via).send(req)
        return req

    # -- a part of a gathered command: it always gets a reply, an error at once if need be --

    def submit(self, server, req):
        if server.fail_until and server.is_failed():
            req.done(server_failed(server))
        else:
            server.link(req.via).send(req)

    def submit_slot(self, slot, req, readonly=False):
        server = self.server_for(slot, readonly)
        if server is None:
            req.done(SLOT_DOWN)
        else:
            self.submit(server, req)

    # -- "not here": called by Request.done on the node link's reader --

    def redirect(self, req, reply, node=None):
        """Follow MOVED / ASK / TRYAGAIN for a request (`node`: the server that
        answered); False leaves the reply to the client.  Everything that may
        refuse is done before the request goes on to another link."""
        kind = redirects.kind(reply)
        if kind is None:
            return reply.startswith(b"-NOSCRIPT") and self.reload_script(req)
        req.redirects += 1
        if req.redirects > MAX_REDIRECTS:
            self._answer(req, redirects.too_many(reply))
            return True
        if kind == redirects.TRYAGAIN:
            greenlets.spawn_later(0.02 * req.redirects, self._retry, req)
            return True
        where = node.addr if node is not None else "?"
        to = redirects.parse(reply, where)
        if to is None:
            self._answer(req, redirects.malformed(reply, where))
            return True
        server = self.pool.server(to.addr)
        link = server.link(req.via)
        if to.ask:
            link.send(ASKING)
        else:
            self.pool.moved(to.slot, to.addr)
        link.send(req)
        return True

    @staticmethod
    def _answer(req, reply):
        req.reply = reply
        req.owner.request_done()

    def reload_script(self, req):
        """EVALSHA met a node without the script: when we saw its body, load
        it on every master (ahead of the retry on each link), then retry."""
        args = decode(req.raw)
        if req.redirects >= MAX_REDIRECTS or args[0].lower() not in (b"evalsha", b"evalsha_ro"):
            return False
        body = self.scripts.get(args[1])
        if body is None:
            return False
        req.redirects += 1
        load = command("SCRIPT", "LOAD", body)
        for server in self.pool.masters:
            server.link(req.via).send(Request(DISCARD, load, None, req.via))
        self._retry(req)
        return True

    def _retry(self, req):
        server = self.pool.master_for(req.slot)
        if server is None:
            self._answer(req, SLOT_DOWN)
            return
        server.link(req.via).send(req)
