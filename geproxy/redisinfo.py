"""INFO's Redis sections (server, clients, memory, persistence, stats,
replication, cpu, cluster, keyspace, commandstats, errorstats), with Redis's field names, for the tools and client
libraries that read them (redis-cli --stat, exporters, Redis's own test
suite).  What concerns the proxy process (memory, cpu, clients) is the
proxy's own; what concerns the data (keyspace, hits, expired keys, command
counts) is summed over the masters, asked once per INFO."""

import os
import platform
import resource
import time
import uuid

from . import __version__, private
from .resp import command, decode

RUN_ID = uuid.uuid4().hex + uuid.uuid4().hex[:8]
BUILD = ("redis_git_sha1", "redis_git_dirty", "redis_build_id")   # the backend's, as its version
SUMMED_STATS = ("keyspace_hits", "keyspace_misses", "expired_keys", "evicted_keys", "expired_stale_perc",
                "total_reads_processed", "total_writes_processed")


def _lines(title, rows):
    return "# %s\r\n" % title + "".join("%s:%s\r\n" % kv for kv in rows)


def _human(n):
    for unit in ("B", "K", "M", "G"):
        if n < 1024 or unit == "G":
            return ("%d%s" if unit == "B" else "%.2f%s") % (n, unit)
        n /= 1024.0


def server(proxy):
    up = int(time.time() - proxy.started)
    port = (proxy.cfg.Bind or proxy.cfg.TLSBind).rpartition(":")[2]
    return _lines("Server", [
        ("redis_version", proxy.pool.version or "unknown"), ("geproxy_version", __version__),
    ] + [(k, proxy.pool.server_info.get(k, "").strip()) for k in BUILD] + [
        ("redis_mode", "standalone"), ("os", "%s %s %s" % (platform.system(), platform.release(), platform.machine())),
        ("arch_bits", 64 if platform.architecture()[0] == "64bit" else 32), ("multiplexing_api", "epoll"),
        ("process_id", os.getpid()), ("run_id", RUN_ID), ("tcp_port", port if port.isdigit() else 0),
        ("uptime_in_seconds", up), ("uptime_in_days", up // 86400),
    ])


def clients(proxy):
    sessions = list(proxy.sessions.values())
    return _lines("Clients", [
        ("connected_clients", len(sessions)),
        ("maxclients", resource.getrlimit(resource.RLIMIT_NOFILE)[0]),
        ("blocked_clients", sum(1 for s in sessions if s.blocked)),
        ("pubsub_clients", sum(1 for s in sessions if s.pubsub is not None and s.pubsub.subscribed())),
        ("tracking_clients", 0),
    ])


def memory(proxy):
    rss = proxy.rss()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    limit = proxy.cfg.MaxMemory
    return _lines("Memory", [
        ("used_memory", rss), ("used_memory_human", _human(rss)), ("used_memory_rss", rss),
        ("used_memory_rss_human", _human(rss)), ("used_memory_peak", peak), ("used_memory_peak_human", _human(peak)),
        ("maxmemory", limit), ("maxmemory_human", _human(limit)), ("maxmemory_policy", "noeviction"),
    ])


def persistence(proxy, nodes):
    """The masters' persistence: counts of changes summed, `*_in_progress` and
    `loading` true where any master's is, the rest the first master's."""
    rows = []
    for k, v in (nodes[0].get("persistence", {}) if nodes else {}).items():
        if isinstance(v, dict):
            continue
        values = [n.get("persistence", {}).get(k, "0") for n in nodes]
        if k == "rdb_changes_since_last_save":
            v = sum(int(x) for x in values if x.lstrip("-").isdigit())
        elif k == "loading" or k.endswith("_in_progress"):
            v = max(int(x) for x in values if x.lstrip("-").isdigit())
        rows.append((k, v))
    return _lines("Persistence", rows)


def stats(proxy, nodes):
    s = proxy.stats
    now = time.time()
    last_t, last_n = s.ops_sample
    ops = (s.total_requests - last_n) / max(now - last_t, 1e-3)
    s.ops_sample = (now, s.total_requests)
    summed = [(k, sum(int(float(n.get("stats", {}).get(k, 0))) for n in nodes)) for k in SUMMED_STATS]
    return _lines("Stats", [
        ("total_connections_received", s.accept), ("total_commands_processed", s.total_requests),
        ("instantaneous_ops_per_sec", int(ops)), ("total_net_input_bytes", s.recv_client_bytes),
        ("total_net_output_bytes", s.send_client_bytes), ("rejected_connections", 0),
        ("total_error_replies", s.errors), ("acl_access_denied_auth", s.auth_failures),
    ] + summed)


def replication(proxy):
    """To its clients the proxy is a master; its nodes' replication is theirs (INFO Servers)."""
    return _lines("Replication", [("role", "master"), ("connected_slaves", 0),
                                  ("master_failover_state", "no-failover"), ("master_replid", RUN_ID),
                                  ("master_repl_offset", 0)])


def cpu(proxy):
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return _lines("CPU", [
        ("used_cpu_sys", "%.6f" % me.ru_stime), ("used_cpu_user", "%.6f" % me.ru_utime),
        ("used_cpu_sys_children", "%.6f" % kids.ru_stime), ("used_cpu_user_children", "%.6f" % kids.ru_utime),
    ])


def cluster(proxy):
    return _lines("Cluster", [("cluster_enabled", 0)])  # to its clients the proxy is one Redis


def keyspace(proxy, nodes):
    keys = expires = 0
    ttls = []
    for n in nodes:
        db = n.get("keyspace", {}).get("db0")
        if db:
            keys += int(db.get("keys", 0))
            expires += int(db.get("expires", 0))
            ttls.append(int(db.get("avg_ttl", 0)))
    rows = [("db0", "keys=%d,expires=%d,avg_ttl=%d" % (keys, expires, max(ttls or [0])))] if keys else []
    return _lines("Keyspace", rows)


def commandstats(proxy, nodes):
    total = {}
    for n in nodes:
        for name, row in n.get("commandstats", {}).items():
            t = total.setdefault(name, {"calls": 0, "usec": 0, "rejected_calls": 0, "failed_calls": 0})
            for k in t:
                t[k] += int(float(row.get(k, 0)))
    return _lines("Commandstats", [
        (name, "calls=%d,usec=%d,usec_per_call=%.2f,rejected_calls=%d,failed_calls=%d" % (
            t["calls"], t["usec"], t["usec"] / t["calls"] if t["calls"] else 0, t["rejected_calls"],
            t["failed_calls"])) for name, t in sorted(total.items())])


def errorstats(proxy, nodes):
    """Error replies by their first word, summed over the masters."""
    total = {}
    for n in nodes:
        for name, row in n.get("errorstats", {}).items():
            total[name] = total.get(name, 0) + int(row.get("count", 0))
    return _lines("Errorstats", [(name, "count=%d" % n) for name, n in sorted(total.items())])


def from_masters(proxy, sections, via=2):
    """Each master's INFO for `sections`, as {section: {field: value or {k: v}}}."""
    masters = list(proxy.pool.masters)
    if not masters:
        return []
    out = []
    for reply in private.call_each(masters, command("INFO", *sections), via, keep=False):
        if reply[:1] == b"-":
            continue
        text = decode(reply)
        text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        node, current = {}, None
        for line in text.splitlines():
            if line.startswith("# "):
                current = node.setdefault(line[2:].strip().lower(), {})
            elif ":" in line and current is not None:
                k, v = line.split(":", 1)
                current[k] = dict(kv.split("=", 1) for kv in v.split(",") if "=" in kv) if "=" in v else v
        out.append(node)
    return out


# name -> (render, needs the masters' INFO of these sections)
SECTIONS = {
    "server": (server, ()), "clients": (clients, ()), "memory": (memory, ()),
    "persistence": (persistence, ("persistence",)), "stats": (stats, ("stats",)),
    "replication": (replication, ()), "cpu": (cpu, ()), "cluster": (cluster, ()),
    "keyspace": (keyspace, ("keyspace",)),
    "commandstats": (commandstats, ("commandstats",)), "errorstats": (errorstats, ("errorstats",)),
}
DEFAULT = ("server", "clients", "memory", "persistence", "stats", "replication", "cpu", "cluster", "keyspace")


def render(proxy, wanted, via=2):
    """The Redis sections in `wanted` (lower-case names), in Redis's order."""
    names = [n for n in SECTIONS if n in wanted]
    needed = sorted({s for n in names for s in SECTIONS[n][1]})
    nodes = from_masters(proxy, needed, via) if needed else []  # as the client's Redis user, if one
    out = []
    for n in names:
        fn, asks = SECTIONS[n]
        out.append(fn(proxy, nodes) if asks else fn(proxy))
    return out
