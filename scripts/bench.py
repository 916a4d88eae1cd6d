"""Benchmark: redis-benchmark straight at a local cluster vs through geproxy
(WorkerProcesses 1 and 2), repeated in alternating order, medians and ratios;
then the proxy's memory with 1,000 idle clients.  Run through scripts/bench.sh."""

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from geproxy.devcluster import DevCluster, command, free_ports, parse_ports  # noqa: E402
from geproxy.serverpool import parse_cluster_nodes  # noqa: E402
from geproxy.slots import key_slot  # noqa: E402

TESTS = [("set,get", 1), ("set,get", 16), ("mget", 1), ("mget", 16)]
# redis-benchmark has no MGET test: a custom command.  Direct, the keys share a slot ({t})
# and go to the master owning it (redis-benchmark --cluster cannot route custom commands);
# through geproxy they are spread over all slots (split per slot and merged).
MGET_ONE_SLOT = ["MGET"] + ["{t}key:__rand_int__"] * 10
MGET_ANY_SLOT = ["MGET"] + ["key:__rand_int__"] * 10


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_proxy(tmp, name, servers, workers):
    port = free_port()
    conf = os.path.join(tmp, "%s.conf" % name)
    with open(conf, "w") as f:
        f.write("Name = %s\nBind = 127.0.0.1:%d\nWorkerProcesses = %d\n[ClusterServerPool]\n"
                "MasterReadPriority = 100\nServers = %s\n" % (name, port, workers, ", ".join(servers)))
    log = open(os.path.join(tmp, "%s.log" % name), "w")
    # GEPROXY_BENCH_PROXY_ROOT: run the geproxy of another checkout (before/after comparisons)
    proc = subprocess.Popen([sys.executable, "-m", "geproxy", "-c", conf], stdout=log,
                            cwd=os.environ.get("GEPROXY_BENCH_PROXY_ROOT", ROOT),
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16) == b"+PONG\r\n":
                    return proc, port
        except OSError:
            time.sleep(0.1)
    raise SystemExit("geproxy %s did not start; see %s" % (name, log.name))


def redis_benchmark(args, tests, pipeline, n, direct):
    cmd = ["redis-benchmark", "-q", "-c", "50", "-n", str(n), "-r", "100000", "-P", str(pipeline)] + args
    if tests == "mget":
        cmd += MGET_ONE_SLOT if direct else MGET_ANY_SLOT
    else:
        cmd += ["-t", tests]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout.replace("\r", "\n")
    found = re.findall(r"^(\w+)\b.*: ([0-9.]+) requests per second", out, re.M)
    if not found:
        raise SystemExit("redis-benchmark %s printed no result:\n%s" % (" ".join(cmd), out[-500:]))
    return {test: float(rps) for test, rps in found}


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=int(os.environ.get("N", 200000)))
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("ROUNDS", 3)))
    ap.add_argument("--ports", default=os.environ.get("GEPROXY_BENCH_PORTS"))
    ap.add_argument("--no-mget", action="store_true", help="SET/GET only")
    ap.add_argument("--no-workers", action="store_true", help="skip geproxy with 2 worker processes")
    opts = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="geproxy-bench-")
    cluster = DevCluster(ports=parse_ports(opts.ports) if opts.ports else free_ports(6),
                         base_dir=os.path.join(tmp, "cluster"))
    procs = []
    try:
        cluster.start()
        proxies = {}
        for name, workers in (("geproxy-1", 1),) + (() if opts.no_workers else (("geproxy-2", 2),)):
            proc, port = start_proxy(tmp, name, cluster.addrs, workers)
            procs.append(proc)
            proxies[name] = (proc, port)
        targets = {"direct": ["--cluster", "-p", str(cluster.ports[0])]}
        nodes = parse_cluster_nodes(command("127.0.0.1", cluster.ports[0], "CLUSTER", "NODES"))
        slot = key_slot(b"t")
        owner = [n.addr for n in nodes if any(a <= slot <= b for a, b in n.slots)][0]
        mget_direct = ["-p", owner.rsplit(":", 1)[1]]
        targets.update({name: ["-p", str(port)] for name, (_, port) in proxies.items()})
        results = {}
        order = list(targets)
        print("N=%d rounds=%d, cluster %s" % (opts.n, opts.rounds, " ".join(cluster.addrs)), flush=True)
        for rnd in range(opts.rounds):
            order = order[1:] + order[:1]           # alternate who goes first
            for tests, p in [t for t in TESTS if not (opts.no_mget and t[0] == "mget")]:
                n = opts.n if tests != "mget" else opts.n // 4
                for target in order:
                    args = mget_direct if tests == "mget" and target == "direct" else targets[target]
                    for test, rps in redis_benchmark(args, tests, p, n, target == "direct").items():
                        results.setdefault((test, p), {}).setdefault(target, []).append(rps)
            print("round %d/%d done" % (rnd + 1, opts.rounds), flush=True)
        print("\n| test | P | direct rps | geproxy x1 rps | ratio x1 | geproxy x2 rps | ratio x2 |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for (test, p), by in results.items():
            d = statistics.median(by["direct"])
            g1, g2 = statistics.median(by["geproxy-1"]), statistics.median(by.get("geproxy-2", [0]))
            label = test + (" 10 keys (direct: one slot; geproxy: all slots)" if test == "MGET" else "")
            print("| %s | %d | %.0f | %.0f | %.2f | %.0f | %.2f |" % (label, p, d, g1, g1 / d, g2, g2 / d))
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


if __name__ == "__main__":
    main()
