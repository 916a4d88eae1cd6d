"""The router: from a parsed command to where it goes.

Routing is data (commands.py): a command's kind says whether the proxy answers
it, which node's slot owns it, or that it needs every master or a private
connection.  Keyed commands go to the master owning their slot over the shared
node link of the client's protocol (RESP2 or RESP3), so reply bytes can be
forwarded as they are.
"""

import logging
from binascii import crc_hqx

from . import authority, blocking, fanout, localcmds, multikey, pubsub
from .request import Muted, Request, Script
from .resp import NOT_READY, error
from .slots import key_slot
from .transaction import Transaction

log = logging.getLogger("geproxy.router")

INTERNAL_ERROR = error("ERR geproxy internal error (logged)")
OOM = error("OOM command not allowed when used memory > 'MaxMemory'")
# Scripts: a node link writes nothing behind one; with no keys they roam (request.Roaming).
SCRIPTS = frozenset(("eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro"))
BODIES = frozenset(("eval", "eval_ro"))     # remembered, for EVALSHA on a master that never ran them
TXN_NOW = frozenset(("exec", "discard", "multi", "watch", "quit", "reset"))  # not queued inside MULTI


def unknown_command(args):
    shown = " ".join("'%s'" % a[:128].decode("utf-8", "replace") for a in args[1:20])
    return error("ERR unknown command '%s', with args beginning with: %s " % (
        args[0][:128].decode("utf-8", "replace"), shown))


def wrong_arity(name):
    return error("ERR wrong number of arguments for '%s' command" % name)


class Router:
    def __init__(self, proxy):
        self.proxy = proxy
        self.pool = proxy.pool
        self.sender = proxy.sender      # everything routed here leaves through the sending layer

    def dispatch_batch(self, session, commands, replies):
        """Route a batch of commands, appending each one's reply (bytes, or a
        request whose reply will come) to `replies`, in order.

        Plain one-key commands (GET, SET, HSET, ...) take the inlined fast path;
        everything else goes through dispatch()."""
        table = self.pool.commands
        lookup = table.lookup if table is not None and not self.proxy.oom else {}
        pool = self.pool
        slots, reads = pool.slots, pool.reads
        hashed = None if pool.cluster else pool.key_slot   # a pool of groups places keys its own way
        via = session.via
        append = replies.append
        measure = bool(self.proxy.latency)
        pause = self.proxy.pause
        watchers = self.proxy.monitor.watchers
        for args, raw in commands:
            if pause is not None:  # CLIENT PAUSE: this client waits here, the others in their own greenlets
                pause = self._hold(session, pause, args)
            if watchers:
                self._monitor(session, args)
            cmd = lookup.get(args[0])
            if cmd is not None and session.plain:
                i = cmd.single
                if i is not None and len(args) > i:
                    key = args[i]
                    if hashed is not None:
                        slot = hashed(key)
                    else:
                        slot = key_slot(key) if b"{" in key else crc_hqx(key, 0) & 16383  # key_slot, inlined
                    if reads is not None and cmd.readonly and reads[slot] is not None:
                        server = reads[slot].pick()
                    else:
                        server = slots[slot]
                    a, n = cmd.arity, len(args)
                    if server is not None and not server.fail_until and (n == a if a > 0 else n >= -a):
                        if not cmd.readonly:
                            session.last_write_slot = slot  # for WAIT
                        req = Request(session, raw, slot, via)
                        if measure:
                            req.measure(cmd.name)
                        (server.links.get(via) or server.link(via)).send(req)
                        append(req)
                        continue
                step = cmd.split
                if step is not None and len(args) > step and not (len(args) - 1) % step:
                    keys = args[1::step]  # MGET, MSET, DEL ...: keys over several slots are split here
                    session.last_cmd = cmd.name
                    if hashed is not None:
                        where = [hashed(k) for k in keys]
                    else:
                        where = [key_slot(k) if b"{" in k else crc_hqx(k, 0) & 16383 for k in keys]
                    if where.count(where[0]) != len(where):
                        append(multikey.dispatch(self.sender, session, cmd, args, where))
                    else:  # one slot: one request, as dispatch() would send it (slots not computed twice)
                        if not cmd.readonly:
                            session.last_write_slot = where[0]
                        append(self.sender.send(session, raw, where[0], cmd.name, cmd.readonly))
                    continue
            mute = session.mute
            try:
                reply = self.dispatch(session, args, raw)
            except Exception:
                log.exception("internal error on %r", args[:3])
                reply = INTERNAL_ERROR
            append(reply if mute is None else self._muted(session, mute, args, reply))
            if session.closing:
                break
            via = session.via

    def dispatch(self, session, args, raw):
        """The reply bytes, or a Request whose reply will come."""
        table = self.pool.commands
        if table is None:
            return self.before_topology(session, args)
        cmd, refused = self.resolve(session, table, args)
        if refused is not None:
            self._doom(session)
            return refused
        session.last_cmd = cmd.name
        if not session.plain:
            reply = self.stateful(session, cmd, args, raw)
            if reply is not None:
                return reply
        if self.proxy.oom and "denyoom" in cmd.flags:
            self._doom(session)
            return OOM
        kind = cmd.kind
        if kind == "local":
            return localcmds.handle(session, cmd.name, args)
        if kind == "key" or kind == "multikey" or kind == "blocking":
            keys = cmd.keys(args)
            key_slot = self.pool.key_slot
            if kind == "multikey":
                slots = [key_slot(k) for k in keys]
                slot = slots[0]
                if slots.count(slot) != len(slots):
                    return self.split(session, cmd, args, slots)
            else:
                slot = key_slot(keys[0]) if keys else None
                for k in keys[1:]:
                    if key_slot(k) != slot:
                        return self.pool.cross({slot, key_slot(k)})
            if cmd.name == "wait":
                return blocking.wait_replicas(self.pool, session, raw)
            if cmd.blocks(args):
                return blocking.call(self.pool, session, raw, slot)
            if not cmd.readonly:
                session.last_write_slot = slot
            sender = self.sender
            if cmd.name in BODIES:
                sender.scripts.remember(args[1])
            if slot is None:
                if cmd.name in SCRIPTS:
                    return sender.send_roaming(session, raw, cmd.name)
                return sender.send_any(session, raw, cmd.name)
            return sender.send(session, raw, slot, cmd.name, cmd.readonly, Script if cmd.name in SCRIPTS else Request)
        if kind == "any":
            return self.sender.send_any(session, raw, cmd.name)
        if kind == "home":
            home = self.pool.home()
            if home is None or (home.fail_until and home.is_failed()):
                return localcmds.handle(session, cmd.name, args) if cmd.name == "ping" else NOT_READY
            return self.sender.send_to(session, raw, home, None, None if cmd.name == "ping" else cmd.name)  # PING: unmeasured
        if kind == "fanout":
            return fanout.dispatch(self.sender, session, cmd.name, args, raw)
        if kind == "txn":
            return self.transaction(session, cmd, args, raw)
        if kind == "pubsub":
            return self.subscribe(session, cmd.name, args, raw)
        return error("ERR " + cmd.reason)

    def _muted(self, session, mute, args, reply):
        """CLIENT REPLY OFF|SKIP: the reply keeps its place but is not sent
        (CLIENT REPLY itself answers as usual); SKIP lasts one command."""
        if args[0].lower() == b"client" and args[1:2] and args[1].lower() == b"reply":
            return reply
        if mute == "skip" and session.mute == "skip":
            session.mute = None
            session.update_mode()
        return Muted(reply)

    def _monitor(self, session, args):
        """MONITOR: commands Redis would run are shown (not unknown ones, nor
        wrong arities), before they run, as Redis shows them."""
        table = self.pool.commands
        cmd = table.get(args[0]) if table is not None else None
        if cmd is not None and cmd.arity_ok(len(args)) and cmd.name != "monitor":
            self.proxy.monitor.log(session, args)

    def resolve(self, session, table, args: list) -> tuple:
        """(table entry, None) for a command this client may run as written, or
        (None, error reply): unknown, wrong arity, unknown subcommand, refused by
        Authority.  The entry is the subcommand's where the proxy routes by it."""
        cmd = table.get(args[0])
        if cmd is None or not cmd.arity_ok(len(args)):
            return None, unknown_command(args) if cmd is None else wrong_arity(cmd.name)
        # The proxy's own commands parse their subcommands; a container Redis runs bare (COMMAND,
        # arity -1) is its own entry, as Redis runs it.
        if cmd.subcommands and cmd.kind != "local" and len(args) > 1:
            sub = cmd.lookup(args)
            if sub is None:
                return None, error("ERR unknown subcommand '%s'. Try %s HELP." % (
                    args[1][:128].decode("utf-8", "replace"), cmd.name.upper()))
            if not sub.arity_ok(len(args)):
                return None, wrong_arity(sub.name)
            cmd = sub
        if not session.plain:
            refused = authority.check(session.grant, cmd, args)
            if refused is not None:
                return None, refused
        return cmd, None

    def _hold(self, session, pause, args):
        """Wait while CLIENT PAUSE holds this command (pause.py); the pause in force after.
        A command Redis would refuse before its pause check (unknown, wrong arity,
        no permission) is not held: its error comes at once."""
        table = self.pool.commands
        if table is None or self.resolve(session, table, args)[1] is not None:
            return pause
        cmd = table.get(args[0])
        while pause is not None and pause.holds(cmd, args, session):
            session.blocked = True
            try:
                pause.wait()
            finally:
                session.blocked = False
            pause = self.proxy.pause
        return pause

    def before_topology(self, session, args):
        """No node reached yet, so no command table: the proxy's own commands
        (PING, INFO, HELLO, QUIT, ...) still answer; the rest get CLUSTERDOWN."""
        name = args[0].lower().decode("utf-8", "replace")
        if name not in localcmds.HANDLERS or (session.grant is None and name not in authority.OPEN):
            return self.pool.not_ready
        try:
            return localcmds.handle(session, name, args) or self.pool.not_ready
        except IndexError:
            return wrong_arity(name)

    def _doom(self, session):
        """An error while queueing dooms the transaction: EXEC will say EXECABORT."""
        if session.txn is not None and session.txn.in_multi:
            session.txn.doomed = True

    def stateful(self, session, cmd, args, raw):
        """Inside MULTI commands are queued; a subscribed RESP2 client may only
        (un)subscribe and PING.  None: dispatch as usual."""
        txn = session.txn
        if txn is not None and txn.in_multi and cmd.name not in TXN_NOW:
            return txn.queue(cmd, args, raw)
        ps = session.pubsub
        if ps is not None and session.proto == 2:
            if ps.subscribed():
                if cmd.name not in pubsub.ALLOWED:
                    return ps.answer_through(pubsub.not_allowed(cmd.name))
                if cmd.name == "ping":
                    return ps.command("ping", args, raw)
            elif cmd.kind != "pubsub" and ps.outstanding():
                ps.settle()  # unsubscribed just now: its confirmations come first
        return None

    def transaction(self, session, cmd, args, raw):
        txn = session.txn
        if txn is None:
            txn = session.txn = Transaction(self.sender, session)
        name = cmd.name
        if name == "multi":
            reply = txn.multi()
        elif name == "exec":
            reply = txn.exec()
        elif name == "discard":
            reply = txn.discard()
        elif name == "watch":
            reply = txn.watch(cmd.keys(args), raw)
        else:
            reply = txn.unwatch(raw)
        session.update_mode()
        return reply

    def subscribe(self, session, name, args, raw):
        if session.pubsub is None:
            session.pubsub = pubsub.PubSub(self.sender, session)
        reply = session.pubsub.command(name, args, raw)
        session.update_mode()
        return reply

    def split(self, session, cmd, args, slots):
        if (len(args) - 1) % cmd.split:
            return wrong_arity(cmd.name)
        return multikey.dispatch(self.sender, session, cmd, args, slots)
