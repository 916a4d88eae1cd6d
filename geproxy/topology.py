"""What a cluster says about itself: its nodes from CLUSTER NODES, and how it
wants clients to spell them.

A node has one address (ip:port) and, when it announces one
(`cluster-announce-hostname`), a name (hostname:port).  With
`cluster-preferred-endpoint-type hostname` the cluster names nodes by that name
in MOVED, ASK and CLUSTER SLOTS; the proxy must see one node behind both
spellings, and dial the one the cluster prefers (a name follows a pod to its
next address; the address may not even be reachable from the proxy).
"""

from typing import Iterable, List, Optional


class NodeInfo:
    __slots__ = ("node_id", "addr", "hostname", "flags", "master_id", "slots")

    def __init__(self, node_id, addr, flags, master_id, slots, hostname=""):
        self.node_id, self.addr, self.flags = node_id, addr, flags
        self.master_id, self.slots, self.hostname = master_id, slots, hostname

    @property
    def is_master(self):
        return "master" in self.flags

    @property
    def name_addr(self) -> str:
        """hostname:port, or "" when the node announces no name."""
        return "%s:%s" % (self.hostname, self.addr.rpartition(":")[2]) if self.hostname else ""

    def spellings(self, names: bool = True) -> List[str]:
        """How the cluster may name this node: its address, and its host name
        when the cluster spells nodes by name (else the name is only a label,
        which several nodes may share)."""
        return [self.addr, self.name_addr] if names and self.hostname else [self.addr]

    def endpoint(self, names: bool) -> str:
        """The spelling to dial: the name when the cluster prefers names and the node has one."""
        return self.name_addr if names and self.hostname else self.addr


def parse_cluster_nodes(text: str, seen_from: Optional[str] = None) -> List[NodeInfo]:
    """CLUSTER NODES text -> [NodeInfo].  Slot ranges as (first, last);
    migrating/importing markers ([slot->-id]) are left out.  The address field
    is `ip:port@cport[,hostname]` (later versions may add `key=value` fields
    after a comma: they are not a hostname)."""
    nodes = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        where = parts[1].split(",")
        addr = where[0].split("@")[0]
        hostname = next((w for w in where[1:] if w and "=" not in w), "")
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
        nodes.append(NodeInfo(parts[0], addr, flags, master_id, slots, hostname))
    return nodes


def one_per_address(nodes: Iterable[NodeInfo], names: bool = False) -> List[NodeInfo]:
    """The nodes, at most one per spelling (`names`: host names count).  A
    node replaced by a new one on the same address or name (a pod that came
    back empty, with a new node id) stays in the cluster's table, flagged
    fail, until it is forgotten; the address is the new node's, so the healthy
    one wins, and a master with slots before one without."""
    def rank(n):
        return ("fail" in n.flags, "fail?" in n.flags, not n.slots, "myself" not in n.flags)
    nodes = list(nodes)
    kept, taken = set(), set()
    for n in sorted(nodes, key=rank):
        if taken.isdisjoint(n.spellings(names)):
            kept.add(n.node_id)
            taken.update(n.spellings(names))
    return [n for n in nodes if n.node_id in kept]     # in the cluster's order: no churn from one refresh to the next


def prefers_names(cluster_slots, nodes: Iterable[NodeInfo]) -> bool:
    """Does the cluster spell nodes by name?  CLUSTER SLOTS names each node by
    the cluster's preferred endpoint: a name there that is the node's hostname
    says so (`cluster-preferred-endpoint-type hostname`)."""
    names = {n.node_id: n.hostname for n in nodes if n.hostname}
    for entry in cluster_slots or []:
        for node in entry[2:] if isinstance(entry, list) else []:
            if isinstance(node, list) and len(node) >= 3 and isinstance(node[0], bytes) and \
                    isinstance(node[2], bytes):
                name = names.get(node[2].decode("latin-1"))
                if name and node[0].decode("latin-1") == name:
                    return True
    return False
