"""MULTI / EXEC / DISCARD / WATCH / UNWATCH in cluster mode, when all keys of
the transaction hash to one slot (predixy refuses transactions in cluster
mode; a slot is all Redis Cluster can make atomic anyway).

Commands after MULTI are checked and queued here (+QUEUED); EXEC sends MULTI,
the queue and EXEC in one write on a private connection to the slot's master.
WATCH pins that connection first, so the watch and the transaction share it.
A key in another slot gets CROSSSLOT and dooms the transaction, as any error
while queueing does in Redis (EXECABORT).
"""

from . import private
from . import localcmds
from . import redirect as redirects
from .framer import elements
from .login import credentials
from .pause import writes
from .resp import OK, command, error

QUEUED = b"+QUEUED\r\n"
EXECABORT = error("EXECABORT Transaction discarded because of previous errors.")
# Served by the proxy but fine inside a transaction: they go to the node as they are.
LOCAL_OK = frozenset(("ping", "echo"))
# Served by the proxy inside a transaction too: run when EXEC runs, their replies in their places.
LOCAL_AT_EXEC = frozenset(("client", "config", "info", "select", "cluster"))


class Transaction:
    def __init__(self, sender, session):
        self.sender = sender
        self.session = session
        self.in_multi = False
        self.queued = []
        self.local = {}             # position in the transaction -> args, of the proxy's own commands
        self.doomed = False
        self.slot = None
        self.writes = False         # a queued command writes: CLIENT PAUSE WRITE holds the EXEC
        self.conn = None            # pinned by WATCH

    # -- state --

    def active(self):
        return self.in_multi or self.conn is not None

    def _pin_slot(self, keys):
        """None when all keys are in one slot, the transaction's so far; else the
        CROSSSLOT error naming where they are."""
        if not keys:
            return None
        pool = self.sender.pool
        slots = {pool.key_slot(k) for k in keys}
        if self.slot is not None:
            slots.add(self.slot)
        if len(slots) > 1:
            return pool.cross(slots)
        self.slot = slots.pop()
        return None

    def _reset(self):
        self.in_multi = False
        self.writes = False
        self.queued = []
        self.local = {}
        self.doomed = False
        self.slot = None
        if self.conn is not None:
            self.conn.release()
            self.conn = None

    def close(self):
        """The client is gone: a pinned connection may hold WATCHes; drop it."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    # -- commands --

    def multi(self):
        if self.in_multi:
            return error("ERR MULTI calls can not be nested")
        self.in_multi = True
        return OK

    def queue(self, cmd, args, raw):
        """A command after MULTI: check it as Redis would, then queue it."""
        if cmd.kind == "local" and cmd.name.split("|")[0] in LOCAL_AT_EXEC:
            self.local[len(self.queued) + len(self.local)] = args
            return QUEUED
        if cmd.kind not in ("key", "multikey", "any", "blocking", "home") and cmd.name not in LOCAL_OK:
            self.doomed = True
            return error("ERR %s inside MULTI is not supported by geproxy" % cmd.name.upper())
        crossed = self._pin_slot(cmd.keys(args))
        if crossed is not None:
            self.doomed = True
            return crossed
        self.queued.append(raw)
        if not self.writes:
            top = self.sender.pool.commands.get(args[0])
            self.writes = top is not None and writes(top, args, self.sender.scripts)
        return QUEUED

    def watch(self, keys, raw):
        if self.in_multi:
            return error("ERR WATCH inside MULTI is not allowed")
        crossed = self._pin_slot(keys)
        if crossed is not None:
            return crossed
        self.session.settle()
        try:
            if self.conn is None:
                self.conn = self._checkout()
            return self.conn.call(raw)[0]
        except Exception as e:
            reply = self._broken(e)
            self._drop()
            return reply

    def unwatch(self, raw):
        if self.in_multi:
            self.queued.append(raw)
            return QUEUED
        reply = OK
        if self.conn is not None:
            try:
                reply = self.conn.call(raw)[0]
            except Exception as e:
                self._broken(e)
                self._drop()
        self._reset()
        return reply

    def discard(self):
        if not self.in_multi:
            return error("ERR DISCARD without MULTI")
        self._unwatch_and_reset()
        return OK

    def exec(self):
        if not self.in_multi:
            return error("ERR EXEC without MULTI")
        if self.doomed:
            self._unwatch_and_reset()
            return EXECABORT
        n = len(self.queued)
        if self.local:
            return self._exec_with_local(n)
        data = command("MULTI") + b"".join(self.queued) + command("EXEC")
        self.session.settle()
        try:
            conn = self.conn or self._checkout()
            self.conn = conn
            via = self.session.via
            if conn.via != via:  # HELLO or AUTH after WATCH: the pinned connection follows
                proto, user, password, db = credentials(via, conn.server.cfg)
                auth = ("AUTH", user or "default", password) if password else ()
                conn.call(command("HELLO", proto, *auth))
                conn.call(command("SELECT", db))
                conn.via = via
            replies = conn.call(data, n + 2)
        except Exception as e:
            reply = self._broken(e, "transaction not run: ")
            self._drop()
            self._reset()
            return reply
        self._reset()
        node = conn.server.addr
        for r in replies[1:-1]:
            kind = redirects.kind(r)
            if kind == redirects.MOVED or kind == redirects.ASK:
                to = redirects.parse(r, node)
                if to is None:
                    return redirects.malformed(r, node)
                if not to.ask:
                    self.sender.pool.moved(to.slot, to.addr)
                return error("EXECABORT Transaction discarded: slot %d moved (%s); run it again"
                             % (to.slot, r[1:-2].decode("utf-8", "replace")))
        return replies[-1]

    def _exec_with_local(self, n):
        """EXEC of a transaction holding some of the proxy's own commands: the
        node runs the rest, then the proxy's run, and each reply takes its place."""
        local = self.local
        self.local = {}
        if n:
            reply = self.exec()
            if reply[:1] not in (b"*", b">"):   # aborted, nil (WATCH), or an error: as it is
                return reply
            node = elements(reply)
        else:
            self._unwatch_and_reset()
            node = []
        out, it = [], iter(node)
        for i in range(len(node) + len(local)):
            out.append(localcmds.handle(self.session, local[i][0].lower().decode(), local[i])
                       if i in local else next(it))
        return b"*%d\r\n" % len(out) + b"".join(out)

    # -- helpers --

    def _checkout(self):
        pool = self.sender.pool
        server = pool.master_for(self.slot)
        if server is None:
            raise private.BackendError("no node serves this slot")
        return private.checkout(server, self.session.via)

    def _unwatch_and_reset(self):
        if self.conn is not None:
            try:
                self.conn.call(command("UNWATCH"))
            except Exception as e:
                self._broken(e)
                self._drop()
        self._reset()

    def _broken(self, e, prefix=""):
        """The error reply for the failure of the pinned connection (or of the
        one being pinned: then the slot's master is the node to name)."""
        if self.conn is not None:
            server = self.conn.server
        else:
            server = self.sender.pool.master_for(self.slot) if self.slot is not None else None
        return private.failed(server, e, prefix)

    def _drop(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None
