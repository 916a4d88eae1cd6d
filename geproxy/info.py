"""INFO as predixy prints it: `# Proxy`, `# SystemResource`, `# Stats`,
`# Servers`, with predixy's field names so its dashboards keep working; then
Redis's own sections (redisinfo.py) for the tools that read those.  A section
name of either set selects it (`stats` selects both)."""

import resource
import time

from . import __version__, greenlets, redisinfo


def render(proxy, args, via=2, keyspace=True):
    """INFO [section ...], INFO Latency <name>, INFO ServerLatency <addr> [name].
    LookupError for an unknown monitor.  keyspace=False leaves out the key
    counts (for a client class with key prefixes: they count every prefix)."""
    wanted = [a.lower() for a in args] or ["default"]
    if wanted[0] == "latency" and len(args) == 2:
        return _monitor(proxy, args[1], None)
    if wanted[0] == "serverlatency" and len(args) in (2, 3):
        return _server_latency(proxy, args[1], args[2] if len(args) == 3 else None)
    if any(w in ("all", "everything") for w in wanted):
        wanted = list(SECTIONS) + list(redisinfo.SECTIONS)
    elif "default" in wanted:
        wanted = list(SECTIONS) + list(redisinfo.DEFAULT)
    if not keyspace:
        wanted = [w for w in wanted if w != "keyspace"]
    parts = [render_section(proxy) for name, render_section in SECTIONS.items() if name in wanted]
    return "\r\n".join(parts + redisinfo.render(proxy, wanted, via))


def _lines(title, rows):
    return "# %s\r\n" % title + "".join("%s:%s\r\n" % kv for kv in rows)


def _proxy(proxy):
    cfg = proxy.cfg
    return _lines("Proxy", [
        ("Version", __version__), ("Name", cfg.Name), ("Bind", cfg.Bind), ("RedisMode", "proxy"),
        ("SingleThread", "true"), ("WorkerThreads", cfg.WorkerProcesses),
        ("WorkerId", proxy.worker_id or 0),
        ("StatsScope", "this worker" if proxy.worker_id is not None else "all"),
        ("Uptime", int(time.time() - proxy.started)),
        ("UptimeSince", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(proxy.started))),
    ])


def _systemresource(proxy):
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss = proxy.rss()
    return _lines("SystemResource", [
        ("UsedMemory", rss), ("MaxMemory", proxy.cfg.MaxMemory), ("MaxRSS", usage.ru_maxrss * 1024),
        ("UsedCpuSys", "%.3f" % usage.ru_stime), ("UsedCpuUser", "%.3f" % usage.ru_utime),
        ("Greenlets", greenlets.alive()),
        ("BackendConnections", sum(s.connections for s in proxy.pool.servers.values())),
    ])


def _stats(proxy):
    s = proxy.stats
    servers = proxy.pool.servers.values()
    return _lines("Stats", [
        ("Accept", s.accept), ("ClientConnections", s.client_connections),
        ("TotalRequests", s.total_requests), ("TotalResponses", s.total_responses),
        ("TotalRecvClientBytes", s.recv_client_bytes),
        ("TotalSendServerBytes", sum(v.send_bytes for v in servers)),
        ("TotalRecvServerBytes", sum(v.recv_bytes for v in servers)),
        ("TotalSendClientBytes", s.send_client_bytes),
    ])


def _servers(proxy):
    blocks = []
    for s in sorted(proxy.pool.servers.values(), key=lambda s: s.addr):
        blocks.append("".join("%s:%s\r\n" % kv for kv in [
            ("Server", s.addr), ("Role", s.role), ("Group", s.group), ("DC", s.dc),
            ("CurrentIsFail", 1 if s.current_is_fail() else 0), ("Connections", s.connections),
            ("Connect", s.connect), ("Requests", s.requests), ("Responses", s.responses),
            ("SendBytes", s.send_bytes), ("RecvBytes", s.recv_bytes),
        ]))
    return "# Servers\r\n" + "\r\n".join(blocks)



def _latencymonitor(proxy):
    return "# LatencyMonitor\r\n" + "\r\n".join(
        "".join(_histogram(m.name, m.total)) for m in proxy.latency.monitors)


SECTIONS = {"proxy": _proxy, "systemresource": _systemresource, "stats": _stats, "servers": _servers,
            "latencymonitor": _latencymonitor}


def _histogram(name, h):
    return ["LatencyMonitorName:%s\r\n" % name] + [row + "\r\n" for row in h.lines()]


def _monitor(proxy, name, _):
    m = proxy.latency.get(name)
    if m is None:
        raise LookupError("no latency monitor named %s" % name)
    out = ["# LatencyMonitor\r\n"] + _histogram(m.name, m.total)
    for addr in sorted(m.servers):
        out += ["\r\nServerLatencyMonitorName:%s %s\r\n" % (addr, m.name)] + \
            [row + "\r\n" for row in m.servers[addr].lines()]
    return "".join(out)


def _server_latency(proxy, addr, name):
    monitors = proxy.latency.monitors if name is None else [m for m in proxy.latency.monitors
                                                            if m.name.lower() == name.lower()]
    out = ["# ServerLatencyMonitor\r\n"]
    for m in monitors:
        h = m.servers.get(addr)
        out += ["ServerLatencyMonitorName:%s %s\r\n" % (addr, m.name)] + \
            ([row + "\r\n" for row in h.lines()] if h else []) + ["\r\n"]
    return "".join(out)
