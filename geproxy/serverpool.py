"""The cluster server pool: which node serves which slot.

The map comes from CLUSTER NODES of any reachable node (the seeds first time),
is refreshed every RefreshInterval by a background greenlet, and at once after
a MOVED.  Replicas are known too, with their master's id as their group.

Addresses change in the cloud: when the known nodes stop answering (every pod
replaced), the refresh goes back to the seeds (seeds.py), names looked up
again, and takes the cluster found there; the old nodes' connections are
closed.  A node is one Server whatever spelling reaches it (its address, or
the host name it announces, topology.py), and a new node id on a known
address is a new Server: nothing of the old node's state carries over.
"""

import logging
import random
import time

import gevent
from gevent.event import Event

from . import greenlets, tls
from .commands import CommandTable
from .connection import BackendError, Connection
from .readpolicy import ReadGroup, replicas_read
from .seeds import Seeds
from .server import Server
from .resp import CROSSSLOT, NOT_READY
from .slots import SLOTS, key_slot
from .topology import one_per_address, parse_cluster_nodes, prefers_names

log = logging.getLogger("geproxy.pool")
REFRESH_LOG_EVERY = 30.0    # seconds between two lines about refreshes that keep failing


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
        self.servers = {}                 # addr -> Server (one per node, under the spelling it dials)
        self.aliases = {}                 # a node's other spelling (ip:port or hostname:port) -> its Server
        self.slots = [None] * slots       # slot -> master Server
        self.masters = []
        self.commands = None              # CommandTable, from the first node reached
        self.version = ""                 # redis_version of the backends
        self.server_info = {}             # INFO server of the first node reached
        self._refresh_now = Event()
        self._failing_since = 0.0         # when refreshes started failing (0: they work)
        self._failure_logged = 0.0

    # -- lookups on the hot path --

    def server(self, addr: str) -> Server:
        """The Server a redirect (or the topology) names, by any spelling of it."""
        s = self.servers.get(addr) or self.aliases.get(addr)
        if s is None:
            s = self.servers[addr] = self._new_server(addr)
        return s

    def _new_server(self, addr):
        s = Server(addr, self.cfg, self.latency)
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
                self._refresh_failed(e)
            except Exception:
                log.exception("topology refresh failed")
            else:
                if self._failing_since:
                    log.warning("topology refresh works again, after %.1fs", time.monotonic() - self._failing_since)
                    self._failing_since = 0.0
            gevent.sleep(0.05)  # MOVED storms coalesce into one refresh

    def _refresh_failed(self, e):
        """Logged when refreshes start failing, then every REFRESH_LOG_EVERY
        seconds while they go on failing (a cluster gone for an hour is not
        3600 lines)."""
        now = time.monotonic()
        if not self._failing_since:
            self._failing_since = self._failure_logged = now
            log.warning("topology refresh failed: %s", e)
        elif now - self._failure_logged >= REFRESH_LOG_EVERY:
            self._failure_logged = now
            log.warning("topology refresh failing for %.0fs: %s", now - self._failing_since, e)

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
        self.seeds = Seeds(list(cfg.Servers), cfg.ServerTimeout or 2.0)
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

    def moved(self, slot: int, addr: str) -> None:
        """A MOVED told us the owner of one slot: believe it now, refresh soon."""
        self.slots[slot] = self.server(addr)
        self._refresh_now.set()

    def _candidates(self):
        """Where to ask for the topology, lazily: one known master (the usual
        answer), then the seeds, looked up again (a Service still reaches the
        pods when every known address is gone), then the other known nodes."""
        known = [s for s in self.masters if not s.is_failed()]
        random.shuffle(known)
        tried = set()
        for s in known[:1]:
            tried.add((s.host, s.port))
            yield s.host, s.port
        for hp in self.seeds.endpoints():
            if hp not in tried:
                tried.add(hp)
                yield hp
        for s in known[1:] + [s for s in list(self.servers.values()) if s not in known]:
            if (s.host, s.port) not in tried:
                tried.add((s.host, s.port))
                yield s.host, s.port

    def _on_some_node(self, ask):
        """`ask(conn)` on the control connection, else on the first candidate
        where it works; a node whose answer is no use (BackendError from
        `ask`) is passed over like one that cannot be reached."""
        errors = []
        if self._control is not None:
            try:
                return ask(self._control)
            except BackendError as e:
                errors.append(str(e))
                self._control.close()
                self._control = None
        for host, port in self._candidates():
            try:
                conn = Connection(host, port, self.cfg.ServerTimeout or 2.0, self.cfg.User, self.cfg.Password,
                                  tls.for_pool(self.cfg))
            except BackendError as e:
                errors.append(str(e))
                continue
            try:
                result = ask(conn)
            except BackendError as e:
                conn.close()
                errors.append(str(e))
                continue
            self._control = conn
            return result
        errors += self.seeds.errors
        raise BackendError("; ".join(errors[-3:]) or "no servers configured")

    def _read_topology(self, conn):
        """(nodes, whether the cluster prefers names) from one node, when it
        knows a slot map: a node not in a cluster yet (a new pod before it is
        joined) knows only itself and no slot, and must not wipe the map."""
        text = conn.execute("CLUSTER", "NODES")
        nodes = parse_cluster_nodes(text.decode("utf-8", "replace"), seen_from=conn.addr)
        if not any(n.slots for n in nodes):
            raise BackendError("%s: knows no slot owner (not in a cluster yet?)" % conn.addr)
        names = any(n.hostname for n in nodes) and prefers_names(conn.execute("CLUSTER", "SLOTS"), nodes)
        return one_per_address(nodes, names), names

    def refresh(self) -> None:
        nodes, names = self._on_some_node(self._read_topology)
        if self.commands is None:
            self._learn_commands(lambda *args: self._on_some_node(lambda conn: conn.execute(*args)))
        self._apply(nodes, names)

    def _server_of(self, n, names, servers):
        """The node's Server: the one its preferred spelling already has
        (maybe made by a MOVED before this refresh), unless that was another
        node's (a new node id on a known address); else a new one.  A node the
        cluster now spells otherwise (the preferred endpoint type changed) is
        a new Server too: the old spelling may no longer be reachable."""
        endpoint = n.endpoint(names)
        s = self.servers.get(endpoint)
        if s is not None and endpoint not in servers and s.node_id in ("", n.node_id):
            return s
        return self._new_server(endpoint)

    def _apply(self, nodes, names=False):
        slots = [None] * SLOTS
        masters = []
        servers, aliases = {}, {}
        ids = {n.node_id: n for n in nodes}
        static, listed = self.seeds.spellings(), set()
        for n in nodes:
            s = self._server_of(n, names, servers)
            servers[s.addr] = s
            for spelling in n.spellings(names):
                if spelling != s.addr:
                    aliases[spelling] = s
            s.node_id = n.node_id
            s.cluster_fail = "fail" in n.flags
            s.dc = self.dcs.dc_of(n.addr) or (n.hostname and self.dcs.dc_of(n.name_addr))
            if not static.isdisjoint(n.spellings()):
                listed.add(s.addr)      # StaticSlaveReadPriority: a node named in Servers
            if n.is_master:
                s.role, s.group = "master", n.node_id
                if n.slots:
                    masters.append(s)
                for first, last in n.slots:
                    slots[first:last + 1] = [s] * (last - first + 1)
            else:
                s.role, s.group = "slave", n.master_id if n.master_id in ids else ""
        gone = [s for s in self.servers.values() if servers.get(s.addr) is not s]
        if masters and masters != self.masters or slots != self.slots:
            log.info("topology: %d masters, %d nodes%s", len(masters), len(nodes),
                     ", %d gone" % len(gone) if gone else "")
        self.servers, self.aliases = servers, aliases
        self.slots = slots
        self.masters = masters
        self.reads = self._read_groups(nodes, slots, listed) if replicas_read(self.cfg, self.dcs) else None
        for s in gone:      # their requests get an error; nothing routes to them any more
            s.close()
            if s.addr not in servers:
                self.latency.forget(s.addr)

    def _read_groups(self, nodes, slots, listed):
        by_id = {s.node_id: s for s in self.servers.values()}
        groups = {}
        for n in nodes:
            if not n.is_master and n.master_id:
                groups.setdefault(n.master_id, []).append(by_id[n.node_id])
        reads = [None] * SLOTS
        made = {}
        for slot, master in enumerate(slots):
            if master is None:
                continue
            g = made.get(master.addr)
            if g is None:
                g = made[master.addr] = ReadGroup(master, groups.get(master.node_id, []), self.cfg, self.dcs,
                                                  listed)
            reads[slot] = g
        return reads
