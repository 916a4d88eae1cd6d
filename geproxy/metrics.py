"""Prometheus metrics at http://MetricsBind/metrics (prometheus_client).

Counters live where they are counted (Stats, Server, the latency monitors);
a snapshot() turns one process's into a plain dict, made on the hub.  With one
process the metrics thread asks the hub for one; with workers, each worker writes its
snapshot to a file every second and the arbiter's metrics thread sums them.
"""

import glob
import json
import os

from .settings import parse_address

SNAPSHOT_EVERY = 1.0


def snapshot(proxy):
    s = proxy.stats
    return {
        "requests": s.total_requests, "responses": s.total_responses,
        "recv_client_bytes": s.recv_client_bytes, "send_client_bytes": s.send_client_bytes,
        "accepted": s.accept, "connections": s.client_connections, "errors": s.errors,
        "auth_failures": s.auth_failures,
        "servers": {a: {"role": v.role, "failed": 1 if v.current_is_fail() else 0, "connections": v.connections,
                        "requests": v.requests, "responses": v.responses, "send_bytes": v.send_bytes,
                        "recv_bytes": v.recv_bytes} for a, v in proxy.pool.servers.items()},
        "latency": {m.name: {"bounds": m.bounds, "counts": m.total.counts, "sums": m.total.sums}
                    for m in proxy.latency.monitors},
    }


def summed(snaps):
    out = {"requests": 0, "responses": 0, "recv_client_bytes": 0, "send_client_bytes": 0, "accepted": 0,
           "connections": 0, "errors": 0, "auth_failures": 0, "servers": {}, "latency": {}}
    for snap in snaps:
        for k in ("requests", "responses", "recv_client_bytes", "send_client_bytes", "accepted",
                  "connections", "errors", "auth_failures"):
            out[k] += snap.get(k, 0)
        for addr, v in snap.get("servers", {}).items():
            mine = out["servers"].setdefault(addr, {"role": v["role"], "failed": 0})
            for k, n in v.items():
                if k == "role":
                    mine[k] = n
                elif k == "failed":
                    mine[k] = max(mine[k], n)
                else:
                    mine[k] = mine.get(k, 0) + n
        for name, h in snap.get("latency", {}).items():
            mine = out["latency"].setdefault(name, {"bounds": h["bounds"], "counts": [0] * len(h["counts"]),
                                                    "sums": [0] * len(h["sums"])})
            mine["counts"] = [a + b for a, b in zip(mine["counts"], h["counts"])]
            mine["sums"] = [a + b for a, b in zip(mine["sums"], h["sums"])]
    return out


class Collector:
    def __init__(self, snaps):
        self.snaps = snaps              # () -> [snapshot dicts]

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
        m = summed(self.snaps())
        for key, doc in (("requests", "commands received"), ("responses", "replies sent"),
                         ("errors", "error replies sent"), ("accepted", "client connections accepted"),
                         ("auth_failures", "failed AUTH and HELLO AUTH"),
                         ("recv_client_bytes", "bytes from clients"), ("send_client_bytes", "bytes to clients")):
            yield CounterMetricFamily("geproxy_%s" % key, doc, value=m[key])
        yield GaugeMetricFamily("geproxy_client_connections", "open client connections", value=m["connections"])
        per_server = [("requests", CounterMetricFamily), ("responses", CounterMetricFamily),
                      ("send_bytes", CounterMetricFamily), ("recv_bytes", CounterMetricFamily),
                      ("connections", GaugeMetricFamily), ("failed", GaugeMetricFamily)]
        for key, kind in per_server:
            fam = kind("geproxy_server_%s" % key, "per backend node: %s" % key, labels=["server", "role"])
            for addr, v in sorted(m["servers"].items()):
                fam.add_metric([addr, v["role"]], v.get(key, 0))
            yield fam
        for name, h in sorted(m["latency"].items()):
            fam = HistogramMetricFamily("geproxy_latency_%s_microseconds" % _ident(name),
                                        "latency monitor %s" % name)
            running, buckets = 0, []
            for bound, count in zip(h["bounds"], h["counts"]):
                running += count
                buckets.append((str(bound), running))
            buckets.append(("+Inf", running + h["counts"][-1]))
            fam.add_metric([], buckets, sum(h["sums"]))
            yield fam


def _ident(name):
    return "".join(c if c.isalnum() else "_" for c in name.lower())


def _serve(cfg, snaps):
    from prometheus_client import start_http_server
    from prometheus_client.core import CollectorRegistry
    registry = CollectorRegistry()
    registry.register(Collector(snaps))
    host, port = parse_address(cfg.MetricsBind)
    return start_http_server(port, addr=host, registry=registry)


def start_for_proxy(proxy) -> object:
    """One process: the metrics thread asks the hub for a snapshot and waits for
    it, so the proxy's state is only ever read on the hub, never while it changes."""
    import threading

    import gevent
    loop = gevent.get_hub().loop

    def snaps():
        done, box = threading.Event(), []

        def take():
            try:
                box.append(snapshot(proxy))
            finally:
                done.set()
        loop.run_callback_threadsafe(take)
        if not done.wait(10):
            raise RuntimeError("the proxy's hub did not answer within 10 s")
        return box
    return _serve(proxy.cfg, snaps)


def start_for_arbiter(cfg, folder):
    """Workers: serve the sum of the snapshot files the workers keep in `folder`."""

    def snaps():
        out = []
        for path in glob.glob(os.path.join(folder, "worker-*.json")):
            try:
                with open(path) as f:
                    out.append(json.load(f))
            except (OSError, ValueError):
                pass
        return out
    _serve(cfg, snaps)


def write_snapshots(proxy, folder, worker_id):
    """In a worker (a greenlet): keep this worker's snapshot file current."""
    import gevent
    path = os.path.join(folder, "worker-%d.json" % worker_id)
    while True:
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(snapshot(proxy), f)
        os.replace(tmp, path)
        gevent.sleep(SNAPSHOT_EVERY)


