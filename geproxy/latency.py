"""Latency monitors, as predixy's: named histograms over chosen commands,
for the whole proxy and per backend node, printed by INFO."""

import time
from bisect import bisect_left


class Histogram:
    __slots__ = ("bounds", "counts", "sums")

    def __init__(self, bounds):
        self.bounds = bounds
        self.reset()

    def reset(self):
        self.counts = [0] * (len(self.bounds) + 1)
        self.sums = [0] * (len(self.bounds) + 1)

    def record(self, us):
        i = bisect_left(self.bounds, us)
        self.counts[i] += 1
        self.sums[i] += us

    def lines(self):
        """predixy's rows: bucket, time spent in it (us), count, cumulative %; then a total row."""
        total = sum(self.counts)
        rows, seen = [], 0
        for i, count in enumerate(self.counts):
            if not count:
                continue
            seen += count
            bound = ("<=", self.bounds[i]) if i < len(self.bounds) else (">", self.bounds[-1])
            rows.append("%-2s %12d %20d %16d %.2f%%" % (bound + (self.sums[i], count, 100.0 * seen / total)))
        if total:
            rows.append("T  %12d %20d %16d" % (sum(self.sums) // total, sum(self.sums), total))
        return rows


class Monitor:
    def __init__(self, name, commands, bounds):
        self.name = name
        words = [c.lower() for c in commands]
        self.everything = "all" in words
        self.include = {w for w in words if not w.startswith("-") and w != "all"}
        self.exclude = {w[1:] for w in words if w.startswith("-")}
        self.bounds = bounds
        self.total = Histogram(bounds)
        self.servers = {}           # addr -> Histogram

    def wants(self, command):
        return command not in self.exclude and (self.everything or command in self.include)

    def record(self, addr, us):
        self.total.record(us)
        h = self.servers.get(addr)
        if h is None:
            h = self.servers[addr] = Histogram(self.bounds)
        h.record(us)

    def reset(self):
        self.total.reset()
        for h in self.servers.values():
            h.reset()


class LatencyMonitors:
    def __init__(self, sections):
        self.monitors = [Monitor(name, s.Commands, s.TimeSpan) for name, s in sections.items()]
        self._by_command = {}

    def __bool__(self):
        return bool(self.monitors)

    def record(self, addr, command, started):
        us = int((time.perf_counter() - started) * 1e6)
        wanted = self._by_command.get(command)
        if wanted is None:
            wanted = self._by_command[command] = [m for m in self.monitors if m.wants(command)]
        for m in wanted:
            m.record(addr, us)

    def get(self, name):
        for m in self.monitors:
            if m.name.lower() == name.lower():
                return m
        return None

    def reset(self):
        for m in self.monitors:
            m.reset()

    def forget(self, addr: str) -> None:
        """A node gone from the cluster: its rows go (the totals keep its
        requests), so a cluster whose addresses keep changing costs no more."""
        for m in self.monitors:
            m.servers.pop(addr, None)
