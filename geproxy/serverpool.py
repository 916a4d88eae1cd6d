"""The cluster server pool: which node serves which slot.

The map comes from CLUSTER NODES of any reachable node (the seeds first time),
is refreshed every RefreshInterval by a background greenlet, and at once after
a MOVED.  Replicas are known too, with their master's id as their group.
"""

import logging
import random

import gevent
from gevent.event import Event

from . import greenlets, tls
from .commands import CommandTable
from .connection import BackendError, Connection
from .readpolicy import ReadGroup, replicas_read
from .server import Server
from .resp import CROSSSLOT, NOT_READY
from .slots import SLOTS, key_slot

log = logging.getLogger("geproxy.pool")


class NodeInfo:
    __slots__ = ("node_id", "addr", "flags", "master_id", "slots")

    def __init__(self, node_id, addr, flags, master_id, slots):
        self.node_id, self.addr, self.flags = node_id, addr, flags
        self.master_id, self.slots = master_id, slots

    @property
    def is_master(self):
        return "master" in self.flags


def parse_cluster_nodes(text, seen_from=None):
    """CLUSTER NODES text -> [NodeInfo].  Slot ranges as (first, last);
    migrating/importing markers ([slot->-id]) are left out."""
    nodes = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        addr = parts[1].split("@")[0].split(",")[0]
        flags = set(parts[2].split(","))
        if "noaddr" in flags or "handshake" in flags:
            continue
        if addr.startswith(":") and seen_from:  # a lone node may not know its own IP
            addr = seen_from.rpartition(":")[0] + addr
        slots = []
        for word in parts[8:]:
            if word.startswith("["):
                continue
            first, _, last = word.partition("-")
            slots.append((int(first), int(last or first)))
        master_id = parts[3] if parts[3] != "-" else ""
        nodes.append(NodeInfo(parts[0], addr, flags, master_id, slots))
    return nodes


class ServerPool:
    """What every kind of pool gives the layers above: `slots` (a key's slot,
    or group, -> its master), `reads`, `masters`, the command table, and a
    background refresh every RefreshInterval or when asked."""

    cluster = True
    not_ready = NOT_READY               # in this pool's words

    def cross(self, slots):
        """The error for a command whose keys span `slots` where they must not."""
        return CROSSSLOT
    key_slot = staticmethod(key_slot)   # a key's hash slot: where routing looks it up in `slots`

    def __init__(self, cfg, latency, dcs, slots):
        self.cfg = cfg
        self.latency = latency
        self.dcs = dcs                    # DataCenters
        self.reads = None                 # slot -> ReadGroup, when reads may leave the master
        self.servers = {}                 # addr -> Server
        self.slots = [None] * slots       # slot -> master Server
        self.masters = []
        self.commands = None              # CommandTable, from the first node reached
        self.version = ""                 # redis_version of the backends
        self.server_info = {}             # INFO server of the first node reached
        self._refresh_now = Event()

    # -- lookups on the hot path --

    def server(self, addr):
        s = self.servers.get(addr)
        if s is None:
            s = self.servers[addr] = Server(addr, self.cfg, self.latency)
            s.cluster = self.cluster
        return s

    def master_for(self, slot):
        """The master owning `slot`; any master for a keyless command (slot None)."""
        return self.slots[slot] if slot is not None else self.any_master()

    def any_master(self):
        masters = self.masters
        return random.choice(masters) if masters else None

    # -- refreshing --

    def refresh(self):
        raise NotImplementedError

    def _refresher(self):
        while True:
            self._refresh_now.wait(timeout=self.cfg.RefreshInterval)
            self._refresh_now.clear()
            try:
                self.refresh()
            except BackendError as e:
                log.warning("topology refresh failed: %s", e)
            except Exception:
                log.exception("topology refresh failed")
            gevent.sleep(0.05)  # MOVED storms coalesce into one refresh

    def _learn_commands(self, query):
        """The command table and server INFO, from the first node `query` reaches."""
        table = query("COMMAND")
        info = query("INFO", "server")
        self.server_info = dict(line.split(":", 1) for line in info.decode().splitlines() if ":" in line)
        self.version = self.server_info.get("redis_version", "").strip()
        self.commands = CommandTable(table)
        log.info("learned %d commands from Redis %s", len(self.commands), self.version)


class ClusterServerPool(ServerPool):
    def __init__(self, cfg, latency, dcs):
        ServerPool.__init__(self, cfg, latency, dcs, SLOTS)
        self.seeds = list(cfg.Servers)
        self._greenlet = None
        self._control = None

    def home(self):
        """The proxy's home master, the same for every client (the first by
        address, as every geproxy on this cluster picks it).  Every
        SUBSCRIBE/PSUBSCRIBE and every PUBLISH go there, so PUBLISH counts all
        receivers, channels and patterns, as one Redis would (cluster pub/sub is
        broadcast, so any master would hear).  PING goes there, and keyless
        scripts start there, so a PING meets -BUSY while such a script runs,
        as it would on one Redis."""
        masters = self.masters
        return min(masters, key=lambda s: s.addr) if masters else None

    # -- topology --

    def start(self):
        """Learn the cluster now if any seed answers; keep refreshing in the background."""
        try:
            self.refresh()
        except BackendError as e:
            log.error("no cluster node reachable yet (%s); retrying in the background", e)
        self._greenlet = greenlets.spawn(self._refresher)

    def stop(self):
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
        if self._control is not None:
            self._control.close()
        for s in self.servers.values():
            s.close()

    def moved(self, slot, addr):
        """A MOVED told us the owner of one slot: believe it now, refresh soon."""
        self.slots[slot] = self.server(addr)
        self._refresh_now.set()

    def _candidates(self):
        known = [s.addr for s in self.masters if not s.is_failed()]
        random.shuffle(known)
        return known + [a for a in self.seeds if a not in known] + \
            [a for a in self.servers if a not in known and a not in self.seeds]

    def _query(self, *args):
        """Ask the control connection, moving to another node when it fails."""
        if self._control is not None:
            try:
                return self._control.execute(*args), self._control.addr
            except BackendError:
                self._control.close()
                self._control = None
        errors = []
        for addr in self._candidates():
            host, _, port = addr.rpartition(":")
            try:
                conn = Connection(host, int(port), self.cfg.ServerTimeout or 2.0, self.cfg.User, self.cfg.Password,
                                  tls.for_pool(self.cfg))
                reply = conn.execute(*args)
            except BackendError as e:
                errors.append(str(e))
                continue
            self._control = conn
            return reply, addr
        raise BackendError("; ".join(errors[-3:]) or "no servers configured")

    def refresh(self):
        text, addr = self._query("CLUSTER", "NODES")
        nodes = parse_cluster_nodes(text.decode(), seen_from=addr)
        if self.commands is None:
            self._learn_commands(lambda *args: self._query(*args)[0])
        self._apply(nodes)

    def _apply(self, nodes):
        slots = [None] * SLOTS
        masters = []
        ids = {n.node_id: n for n in nodes}
        for n in nodes:
            s = self.server(n.addr)
            s.node_id = n.node_id
            s.cluster_fail = "fail" in n.flags
            s.dc = self.dcs.dc_of(n.addr)
            if n.is_master:
                s.role, s.group = "master", n.node_id
                if n.slots:
                    masters.append(s)
                for first, last in n.slots:
                    slots[first:last + 1] = [s] * (last - first + 1)
            else:
                s.role, s.group = "slave", n.master_id if n.master_id in ids else ""
        gone = [a for a in self.servers if a not in {n.addr for n in nodes}]
        for addr in gone:
            self.servers.pop(addr).close()
        if masters and masters != self.masters or slots != self.slots:
            log.info("topology: %d masters, %d nodes", len(masters), len(nodes))
        self.slots = slots
        self.masters = masters
        self.reads = self._read_groups(nodes, slots) if replicas_read(self.cfg, self.dcs) else None

    def _read_groups(self, nodes, slots):
        groups = {}
        for n in nodes:
            if not n.is_master and n.master_id:
                groups.setdefault(n.master_id, []).append(self.servers[n.addr])
        reads = [None] * SLOTS
        made = {}
        for slot, master in enumerate(slots):
            if master is None:
                continue
            g = made.get(master.addr)
            if g is None:
                g = made[master.addr] = ReadGroup(master, groups.get(master.node_id, []), self.cfg, self.dcs,
                                                  set(self.seeds))
            reads[slot] = g
        return reads
