"""A pool of groups (SentinelServerPool, StandaloneServerPool): several
independent master/replica groups, no Redis Cluster.  A key's group comes from
its hash (distribution.py), so the proxy shards keys over the groups.

The group index plays the part a hash slot plays in a cluster: `slots[i]` is
group i's master, `key_slot(key)` the group of a key, and everything above the
pool (router, sender, multi-key split, transactions) works unchanged.  There is
no MOVED: a group's master is what the configuration says (RefreshMethod fixed)
or what Sentinel says, asked every RefreshInterval and at once when a Sentinel
announces `+switch-master`.
"""

import logging
import random

import gevent

from . import greenlets, tls
from .connection import BackendError, Connection, dial, handshake_commands, read_replies
from .distribution import Placement
from .framer import Framer
from .readpolicy import ReadGroup, replicas_read
from .resp import ProtocolError, command, decode, error
from .serverpool import ServerPool
from .settings import by_sentinel

log = logging.getLogger("geproxy.pool")
DOWN = ("s_down", "o_down", "disconnected")     # Sentinel's flags of a replica not to read from


class Group:
    __slots__ = ("name", "master", "replicas")

    def __init__(self, name):
        self.name, self.master, self.replicas = name, None, []


class GroupServerPool(ServerPool):
    cluster = False
    not_ready = error("CLUSTERDOWN geproxy does not know the groups' masters yet (no Sentinel or node answered)")

    def __init__(self, cfg, latency, dcs, kind):
        ServerPool.__init__(self, cfg, latency, dcs, len(cfg.groups))
        self.kind = kind
        self.by_sentinel = by_sentinel(kind, getattr(cfg, "RefreshMethod", None))  # only Standalone has it
        self.groups = [Group(name) for name in cfg.groups]
        self.placement = Placement(cfg.Hash, cfg.HashTag, cfg.Distribution, len(self.groups))
        self.key_slot = self.placement.group_of
        self.sentinels = list(cfg.Sentinels)
        self._greenlets = []

    def cross(self, slots):
        names = ", ".join(self.groups[i].name for i in sorted(slots))
        return error("CROSSSLOT Keys in request don't hash to the same group (they are in %s)" % names)

    def home(self):
        """The first group's master: pub/sub and keyless scripts go there."""
        return self.slots[0]

    # -- topology --

    def start(self):
        try:
            self.refresh()
        except BackendError as e:
            log.error("no group reachable yet (%s); retrying in the background", e)
        self._greenlets = [greenlets.spawn(self._refresher)]
        if self.by_sentinel:
            self._greenlets += [greenlets.spawn(self._listen, addr) for addr in self.sentinels]

    def stop(self):
        for g in self._greenlets:
            g.kill(block=False)
        for s in self.servers.values():
            s.close()

    def moved(self, slot, addr):
        """Groups do not answer MOVED; a node that does is not what we think: look again."""
        self._refresh_now.set()

    def refresh(self):
        layout = self._ask_sentinels() if self.by_sentinel else {
            g.name: (addrs[0], addrs[1:]) for g, addrs in zip(self.groups, self.cfg.groups.values())}
        self._apply(layout)
        if self.commands is None:
            self._learn_from_masters()

    def _ask_sentinels(self):
        """group name -> (master addr, [replica addrs]), from the first Sentinel that
        answers for every group (one that lacks a group is passed over)."""
        errors = []
        for addr in random.sample(self.sentinels, len(self.sentinels)):
            host, _, port = addr.rpartition(":")
            try:
                conn = Connection(host, int(port), self.cfg.ServerTimeout or 2.0, "", self.cfg.SentinelPassword,
                                  tls.for_pool(self.cfg))
            except BackendError as e:
                errors.append(str(e))
                continue
            try:
                layout = {}
                for g in self.groups:
                    master = conn.execute("SENTINEL", "get-master-addr-by-name", g.name)
                    if not master:
                        raise BackendError("Sentinel %s does not know a master named %r" % (addr, g.name))
                    replicas = []
                    for entry in conn.execute("SENTINEL", "replicas", g.name) or []:
                        info = dict(zip(entry[::2], entry[1::2]))
                        flags = info.get(b"flags", b"").decode().split(",")
                        if not any(f in flags for f in DOWN):
                            replicas.append("%s:%s" % (info[b"ip"].decode(), info[b"port"].decode()))
                    layout[g.name] = ("%s:%s" % (master[0].decode(), master[1].decode()), replicas)
                return layout
            except BackendError as e:
                errors.append(str(e))
            finally:
                conn.close()
        raise BackendError("no Sentinel answered: %s" % "; ".join(errors[-3:]))

    def _apply(self, layout):
        seen = set()
        for i, g in enumerate(self.groups):
            master_addr, replica_addrs = layout[g.name]
            master = self.server(master_addr)
            master.role, master.group = "master", g.name
            if g.master is not None and g.master is not master:
                log.warning("group %s: master %s -> %s", g.name, g.master.addr, master.addr)
            g.master = master
            g.replicas = [self.server(a) for a in replica_addrs if a != master_addr]
            for r in g.replicas:
                r.role, r.group = "slave", g.name
            for s in [master] + g.replicas:
                s.dc = self.dcs.dc_of(s.addr)
                seen.add(s.addr)
            self.slots[i] = master
        for addr in [a for a in self.servers if a not in seen]:
            self.servers.pop(addr).close()
        self.masters = [g.master for g in self.groups]
        if replicas_read(self.cfg, self.dcs):
            static = {a for addrs in self.cfg.groups.values() for a in addrs[1:]}
            self.reads = [ReadGroup(g.master, g.replicas, self.cfg, self.dcs, static) for g in self.groups]
        else:
            self.reads = None

    def _learn_from_masters(self):
        errors = []
        for server in self.masters:
            try:
                conn = Connection(server.host, server.port, self.cfg.ServerTimeout or 2.0,
                                  self.cfg.User, self.cfg.Password, tls.for_pool(self.cfg))
            except BackendError as e:
                errors.append(str(e))
                continue
            try:
                return self._learn_commands(conn.execute)
            finally:
                conn.close()
        raise BackendError("no master answered COMMAND: %s" % "; ".join(errors[-3:]))

    def _listen(self, addr):
        """Hear a Sentinel's +switch-master: refresh at once rather than at the next interval."""
        host, _, port = addr.rpartition(":")
        while True:
            sock = None
            try:
                sock = dial(host, int(port), self.cfg.ServerTimeout or 2.0, self.cfg.KeepAlive,
                            tls.for_pool(self.cfg))
                cmds = handshake_commands(2, "", self.cfg.SentinelPassword)
                cmds.append(command("SUBSCRIBE", "+switch-master"))
                sock.sendall(b"".join(cmds))
                read_replies(sock, len(cmds), "sentinel %s" % addr)
                sock.settimeout(None)
                framer = Framer()
                while True:
                    data = sock.recv(65536)
                    if not data:
                        raise BackendError("sentinel %s closed the connection" % addr)
                    for raw in framer.feed(data):
                        msg = decode(raw)
                        if isinstance(msg, list) and msg and msg[0] == b"message":
                            log.info("sentinel %s: +switch-master %s", addr, msg[-1].decode(errors="replace"))
                            self._refresh_now.set()
            except (BackendError, OSError, ProtocolError) as e:
                log.debug("sentinel %s: %s", addr, e)
            except Exception:  # a bug of ours must not stop the listening for good
                log.exception("sentinel %s: listener failed; listening again", addr)
            finally:
                if sock is not None:
                    sock.close()
            gevent.sleep(1.0)

