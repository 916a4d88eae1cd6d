"""Benchmark: redis-benchmark straight at a local cluster vs through geproxy
(WorkerProcesses 1 and 2) and, given PREDIXY=/path/to/predixy, through predixy
(WorkerThreads 1 and 2), repeated in alternating order: medians of rates and of
p50/p99 latencies, and ratios; then memory with 1,000 idle clients.
TLS rows (unless --no-tls): a second cluster on TLS only, redis-benchmark --tls
straight at it against geproxy with TLS on both sides, and against the plain
geproxy of the first part, in the same alternating rounds.
Run through scripts/bench.sh."""

import argparse
import os
import re
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))     # tlshelp: certificates made at run time

from geproxy.devcluster import DevCluster, command, free_ports, parse_ports  # noqa: E402
from geproxy.serverpool import parse_cluster_nodes  # noqa: E402
from geproxy.slots import key_slot  # noqa: E402

DEEP = 10000    # one client's 10,000-command pipelines: past ClientMaxInflight, which must not slow them
TESTS = [("set,get", 1), ("set,get", 16), ("set,get", DEEP), ("mget", 1), ("mget", 16), ("mset", 1),
         ("mset", 16), ("del", 1), ("del", 16)]
# Multi-key tests are custom commands of 10 keys.  Direct, the keys share a slot ({t}) and go
# to the master owning it (redis-benchmark --cluster cannot route custom commands); through a
# proxy they are spread over all slots (split per slot and merged): the same work for both proxies.
MULTI = {"mget": ["MGET"], "mset": ["MSET"], "del": ["DEL"]}
MULTI_VALUE = {"mset": ["v"]}
TLS_TESTS = [("set,get", 1), ("set,get", 16)]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_predixy(tmp, name, binary, servers, threads):
    """predixy from PREDIXY (built from its public repository; nothing of it is in this repo)."""
    port = free_port()
    conf = os.path.join(tmp, "%s.conf" % name)
    with open(conf, "w") as f:
        f.write("Name %s\nBind 127.0.0.1:%d\nWorkerThreads %d\nLog %s\n"
                "ClusterServerPool {\n    MasterReadPriority 100\n    Servers {\n%s    }\n}\n" % (
                    name, port, threads, os.path.join(tmp, "%s.log" % name),
                    "".join("        + %s\n" % s for s in servers)))
    proc = subprocess.Popen([binary, conf], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True)
    return proc, wait_ready(proc, port, name)


def wait_ready(proc, port, name, tls=None):
    """The port, once the proxy answers a SET (tls: an SSLContext for a TLS listener)."""
    deadline = time.time() + 15
    while time.time() < deadline and proc.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as raw:
                s = tls.wrap_socket(raw) if tls else raw
                s.sendall(b"*3\r\n$3\r\nSET\r\n$5\r\nbench\r\n$1\r\n1\r\n")
                if s.recv(16) == b"+OK\r\n":  # topology known, not just listening
                    return port
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("%s did not start" % name)


def start_proxy(tmp, name, servers, workers, certs=None):
    """geproxy on a free port; certs (node, client, with .ca): TLS on both sides, TLS listener only."""
    port = free_port()
    conf = os.path.join(tmp, "%s.conf" % name)
    bind = "Bind = 127.0.0.1:%d\n" % port
    pool = ""
    if certs:
        node, client = certs
        bind = "Bind = \nTLSBind = 127.0.0.1:%d\nTLSCertFile = %s\nTLSKeyFile = %s\n" % (port, node.cert, node.key)
        pool = "ServerTLS = yes\nServerTLSCAFile = %s\nServerTLSCertFile = %s\nServerTLSKeyFile = %s\n" % (
            client.ca, client.cert, client.key)
    with open(conf, "w") as f:
        f.write("Name = %s\n%sWorkerProcesses = %d\n[ClusterServerPool]\n"
                "MasterReadPriority = 100\nServers = %s\n%s" % (name, bind, workers, ", ".join(servers), pool))
    log = open(os.path.join(tmp, "%s.log" % name), "w")
    # GEPROXY_BENCH_PROXY_ROOT: run the geproxy of another checkout (before/after comparisons)
    proc = subprocess.Popen([sys.executable, "-m", "geproxy", "-c", conf], stdout=log,
                            cwd=os.environ.get("GEPROXY_BENCH_PROXY_ROOT", ROOT),
                            stderr=subprocess.STDOUT, start_new_session=True)
    return proc, wait_ready(proc, port, "geproxy %s (see %s)" % (name, log.name),
                            tls_client(certs[1]) if certs else None)


def tls_client(cert):
    """A client context trusting the test CA, presenting `cert`."""
    ctx = ssl.create_default_context(cafile=cert.ca)
    ctx.check_hostname = False
    ctx.load_cert_chain(cert.cert, cert.key)
    return ctx


def tls_args(cert):
    return ["--tls", "--cacert", cert.ca, "--cert", cert.cert, "--key", cert.key]


def redis_benchmark(args, tests, pipeline, n, direct):
    """{test: (requests/s, p50 ms, p99 ms)}"""
    clients = "1" if pipeline == DEEP else "50"
    cmd = ["redis-benchmark", "--csv", "-c", clients, "-n", str(n), "-r", "100000", "-P", str(pipeline)] + args
    if tests in MULTI:
        key = ["{t}key:__rand_int__" if direct else "key:__rand_int__"] + MULTI_VALUE.get(tests, [])
        cmd += MULTI[tests] + key * 10
    else:
        cmd += ["-t", tests]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout
    # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms",...
    found = {}
    for row in re.findall(r'^"([^"]+)","([0-9.]+)","[0-9.]+","[0-9.]+","([0-9.]+)","[0-9.]+","([0-9.]+)"', out, re.M):
        name = tests.upper() if tests in MULTI else row[0]
        found[name] = tuple(float(x) for x in row[1:])
    if not found:
        raise SystemExit("redis-benchmark %s printed no result:\n%s" % (" ".join(cmd), out[-500:]))
    return found


def tree_rss(pid):
    """RSS in KiB of a process and its children."""
    total = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = open("/proc/%s/stat" % d).read().rsplit(")", 1)[1].split()
            if d == str(pid) or stat[1] == str(pid):
                total += int([line.split()[1] for line in open("/proc/%s/status" % d)
                              if line.startswith("VmRSS:")][0])
        except (OSError, IndexError):
            pass
    return total


def idle_clients_rss(port, pid, count=1000):
    socks = []
    try:
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"PING\r\n")
            socks.append(s)
        for s in socks:
            s.recv(16)
        time.sleep(1)
        return tree_rss(pid)
    finally:
        for s in socks:
            s.close()


def report(results, names):
    """One row per test: each target's median rate (p50/p99 ms), ratios to direct and to predixy."""
    def med(by, name, i):
        return statistics.median(v[i] for v in by[name])
    cols = ["direct"] + names
    print("\n| test | P | " + " | ".join("%s rps (p50/p99 ms)" % c for c in cols) + " | ratios |")
    print("| --- | --- | " + " | ".join("---" for _ in cols) + " | --- |")
    for (test, p), by in results.items():
        cells = ["%.0f (%.2f/%.2f)" % tuple(med(by, c, i) for i in range(3)) for c in cols]
        d = med(by, "direct", 0)
        ratios = []
        for c in names:
            if c.startswith("geproxy"):
                ratios.append("%s/direct %.2f" % (c, med(by, c, 0) / d))
                twin = c.replace("geproxy", "predixy")
                if twin in by:
                    ratios.append("%s/%s %.2f (p99 x%.1f)" % (c, twin, med(by, c, 0) / med(by, twin, 0),
                                                             med(by, c, 2) / max(med(by, twin, 2), 0.001)))
        label = test + (" 10 keys (direct: one slot; proxies: all slots)" if test in ("MGET", "MSET", "DEL") else "")
        print("| %s | %d | %s | %s |" % (label, p, " | ".join(cells), "; ".join(ratios)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=int(os.environ.get("N", 200000)))
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("ROUNDS", 3)))
    ap.add_argument("--ports", default=os.environ.get("GEPROXY_BENCH_PORTS"))
    ap.add_argument("--predixy", default=os.environ.get("PREDIXY"), help="a predixy binary to compare with")
    ap.add_argument("--tests", default=os.environ.get("TESTS", "set,get,mget,mset,del"),
                    help="which of set,get,mget,mset,del (default all)")
    ap.add_argument("--no-workers", action="store_true", help="skip the two-worker runs")
    ap.add_argument("--no-tls", action="store_true", help="skip the TLS rows")
    opts = ap.parse_args()
    wanted = set(opts.tests.split(","))
    tests = [(t, p) for t, p in TESTS if set(t.split(",")) & wanted]
    tmp = tempfile.mkdtemp(prefix="geproxy-bench-")
    cluster = DevCluster(ports=parse_ports(opts.ports) if opts.ports else free_ports(6),
                         base_dir=os.path.join(tmp, "cluster"))
    procs = []
    try:
        cluster.start()
        proxies = {}
        for workers in (1,) if opts.no_workers else (1, 2):
            proc, port = start_proxy(tmp, "geproxy-%d" % workers, cluster.addrs, workers)
            procs.append(proc)
            proxies["geproxy-%d" % workers] = (proc, port)
            if opts.predixy:
                proc, port = start_predixy(tmp, "predixy-%d" % workers, opts.predixy, cluster.addrs, workers)
                procs.append(proc)
                proxies["predixy-%d" % workers] = (proc, port)
        targets = {"direct": ["--cluster", "-p", str(cluster.ports[0])]}
        nodes = parse_cluster_nodes(command("127.0.0.1", cluster.ports[0], "CLUSTER", "NODES"))
        slot = key_slot(b"t")
        owner = [n.addr for n in nodes if any(a <= slot <= b for a, b in n.slots)][0]
        multi_direct = ["-p", owner.rsplit(":", 1)[1]]
        targets.update({name: ["-p", str(port)] for name, (_, port) in proxies.items()})
        results = {}
        order = list(targets)
        print("N=%d rounds=%d, cluster %s" % (opts.n, opts.rounds, " ".join(cluster.addrs)), flush=True)
        for rnd in range(opts.rounds):
            order = order[1:] + order[:1]           # alternate who goes first
            for test_names, p in tests:
                n = opts.n if test_names not in MULTI else opts.n // 4
                for target in order:
                    direct = target == "direct"
                    args = multi_direct if test_names in MULTI and direct else targets[target]
                    for test, row in redis_benchmark(args, test_names, p, n, direct).items():
                        if test.lower() in wanted:
                            results.setdefault((test, p), {}).setdefault(target, []).append(row)
            print("round %d/%d done" % (rnd + 1, opts.rounds), flush=True)
        report(results, list(proxies))
        if not opts.no_tls and wanted & {"set", "get"}:
            tls_part(tmp, opts, wanted, procs, proxies["geproxy-1"][1])
        for name, (proc, port) in proxies.items():
            print("\n%s RSS: %d KiB at rest after the runs, %d KiB with 1,000 idle clients" % (
                name, tree_rss(proc.pid), idle_clients_rss(port, proc.pid)))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        cluster.stop()


def tls_part(tmp, opts, wanted, procs, plain_port):
    """TLS rows: a TLS-only cluster, redis-benchmark --tls --cluster straight at it, geproxy with
    TLS on both sides (one worker), and the plain geproxy (one worker) on the plain cluster."""
    from tlshelp import make_ca, make_cert
    certs = os.path.join(tmp, "certs")
    ca = make_ca(certs)
    node, client = make_cert(certs, "node", ca), make_cert(certs, "client", ca, sans=[])
    cluster = DevCluster(ports=free_ports(6), base_dir=os.path.join(tmp, "tls-cluster"), tls=node)
    try:
        cluster.start()
        proc, port = start_proxy(tmp, "geproxy-tls", cluster.addrs, 1, (node, client))
        procs.append(proc)
        targets = {"direct-tls": tls_args(client) + ["--cluster", "-p", str(cluster.ports[0])],
                   "geproxy-tls": tls_args(client) + ["-p", str(port)],
                   "geproxy-1": ["-p", str(plain_port)]}
        results, order = {}, list(targets)
        for rnd in range(opts.rounds):
            order = order[1:] + order[:1]
            for test_names, p in TLS_TESTS:
                for target in order:
                    for test, row in redis_benchmark(targets[target], test_names, p, opts.n, False).items():
                        if test.lower() in wanted:
                            results.setdefault((test, p), {}).setdefault(target, []).append(row)
            print("TLS round %d/%d done" % (rnd + 1, opts.rounds), flush=True)
        print("\n| TLS test | P | " + " | ".join("%s rps (p50/p99 ms)" % c for c in targets) + " | ratios |")
        print("| --- | --- | " + " | ".join("---" for _ in targets) + " | --- |")
        for (test, p), by in results.items():
            med = {c: [statistics.median(v[i] for v in by[c]) for i in range(3)] for c in targets}
            cells = ["%.0f (%.2f/%.2f)" % tuple(med[c]) for c in targets]
            print("| %s | %d | %s | geproxy-tls/direct-tls %.2f; geproxy-tls/geproxy-1 %.2f |" % (
                test, p, " | ".join(cells), med["geproxy-tls"][0] / med["direct-tls"][0],
                med["geproxy-tls"][0] / med["geproxy-1"][0]))
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
