"""Where reads go: predixy's read priorities.

Each master and its replicas form a group.  A read-only command goes to the
healthy member with the highest priority (ties spread at random); priority 0
means "never read here"; with no member above 0, the master serves.  Role
priorities: MasterReadPriority, StaticSlaveReadPriority (replicas listed in
Servers), DynamicSlaveReadPriority (replicas learned from the cluster).  With
LocalDC and [DataCenter], the local DC's ReadPolicy ranks nodes by their DC
first (a node's DC: the one whose AddrPrefix its address starts with, set
on the Server by its pool; a node the cluster spells by host name is matched
by its IP address first, then by its name).
"""

import random


class DataCenters:
    def __init__(self, local, sections):
        self.local = local
        self.prefixes = [(p, name) for name, s in sections.items() for p in s.AddrPrefix]
        self.prefixes.sort(key=lambda pn: -len(pn[0]))  # the longest prefix wins
        policy = sections[local].ReadPolicy if local in sections else []
        self.policy = {}
        for word in policy:
            dc, _, prio = word.rpartition(" ")
            self.policy[dc.strip()] = int(prio)

    def dc_of(self, addr: str) -> str:
        for prefix, name in self.prefixes:
            if addr.startswith(prefix):
                return name
        return ""

    def priority(self, dc: str) -> int:
        """The local DC's read priority for DC `dc` (1 when no DCs are set up).
        By the DC, not the address: a node's spelling may be a host name."""
        if not self.local:
            return 1
        return self.policy.get(dc, 0)


class ReadGroup:
    """A master and its replicas, ranked for reads."""

    __slots__ = ("master", "members")

    def __init__(self, master, replicas, cfg, dcs, seeds):
        self.master = master
        ranked = [((dcs.priority(master.dc), cfg.MasterReadPriority), master)]
        for r in replicas:
            role = cfg.StaticSlaveReadPriority if r.addr in seeds else cfg.DynamicSlaveReadPriority
            ranked.append(((dcs.priority(r.dc), role), r))
        self.members = [(rank, s) for rank, s in ranked if rank[0] > 0 and rank[1] > 0]

    def pick(self):
        best, chosen = None, []
        for rank, s in self.members:
            if s.cluster_fail or (s.fail_until and s.is_failed()):
                continue
            if best is None or rank > best:
                best, chosen = rank, [s]
            elif rank == best:
                chosen.append(s)
        if not chosen:
            return self.master
        return chosen[0] if len(chosen) == 1 else random.choice(chosen)


def replicas_read(cfg, dcs):
    """Could any read go elsewhere than to the master?"""
    return bool(dcs.local) or cfg.StaticSlaveReadPriority > 0 or cfg.DynamicSlaveReadPriority > 0
