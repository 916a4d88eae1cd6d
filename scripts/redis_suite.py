"""Redis's own test suite, in the mode Redis made for cluster proxies
(`--cluster-mode`), through geproxy in front of a 3+3 cluster, beside the same
units against one standalone redis-server.  Run by scripts/redis-suite.sh.

Each unit/ file runs on its own with a time limit: a hang costs that unit
(the proxy is restarted and the next unit goes on).  Prints a per-unit table
and the totals; exits non-zero when the proxy's total passed is below the
floor, or when a unit hung (unless --allow-hang).
"""

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from geproxy.devcluster import DevCluster  # noqa: E402

EXCLUDED_TAGS = ["needs:debug", "needs:repl", "needs:config-maxmemory", "needs:save", "needs:pfdebug",
                 "needs:local-process", "needs:latency", "needs:config-resetstat"]
RESULT = re.compile(r"^\[(ok|err|exception|ignore|skip)\]: (.*)$")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ping(port, proc, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16) == b"+PONG\r\n":
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("server on port %d did not start" % port)


def units(src):
    """The unit/ files of the suite, in its own order."""
    with open(os.path.join(src, "tests", "test_helper.tcl")) as f:
        text = f.read()
    listed = re.search(r"set ::all_tests \{(.*?)\}", text, re.S).group(1).split()
    return [u for u in listed if u.startswith("unit/")]


class Target:
    """Something to run the units against: a geproxy on a cluster, or one redis-server."""

    def __init__(self, kind, tmp, cluster=None):
        self.kind, self.tmp, self.cluster = kind, tmp, cluster
        self.port, self.proc = free_port(), None

    def start(self):
        log = open(os.path.join(self.tmp, "%s.log" % self.kind), "a")
        if self.kind == "geproxy":
            conf = os.path.join(self.tmp, "geproxy.conf")
            with open(conf, "w") as f:
                f.write("Name = redis-suite\nBind = 127.0.0.1:%d\nWorkerProcesses = 1\n[ClusterServerPool]\n"
                        "MasterReadPriority = 100\nServers = %s\n" % (self.port, ", ".join(self.cluster.addrs)))
            cmd = [sys.executable, "-m", "geproxy", "-c", conf]
        else:
            cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", self.tmp]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_ping(self.port, self.proc)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def restart(self):
        self.stop()
        if self.cluster is not None:  # a script left running (BUSY) would hold the next unit
            for port in self.cluster.alive():
                for args in (("SCRIPT", "KILL"), ("FUNCTION", "KILL")):
                    subprocess.run(["redis-cli", "-p", str(port)] + list(args), capture_output=True, timeout=10)
        self.start()


def run_unit(src, target, unit, timeout):
    """(passed, failed, status, failures) for one unit."""
    cmd = ["./runtest", "--host", "127.0.0.1", "--port", str(target.port), "--cluster-mode", "--singledb",
           "--clients", "1", "--single", unit, "--timeout", str(timeout)]
    for tag in EXCLUDED_TAGS:
        cmd += ["--tags", "-" + tag]
    proc = subprocess.Popen(cmd, cwd=src, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out = proc.communicate(timeout=timeout + 30)[0]
        status = None
    except subprocess.TimeoutExpired:
        status = "hang"
    finally:
        try:  # runtest's test server and client too, not only the shell that started them
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
    if status == "hang":
        out = proc.communicate()[0] or ""
    out = ANSI.sub("", out)
    passed, failures = 0, []
    for line in out.splitlines():
        m = RESULT.match(line)
        if m and m.group(1) == "ok":
            passed += 1
        elif m and m.group(1) in ("err", "exception"):
            failures.append(m.group(2)[:200])
    if status is None:
        if "[TIMEOUT]" in out:
            status = "hang"       # runtest's own --timeout: a test waited for good
        elif "[exception]" in out or "Killing" in out:
            status = "aborted"
        else:
            status = "ok"
    return passed, len(failures), status, failures


def run_all(src, target, names, timeout, log):
    results = {}
    target.start()
    try:
        for unit in names:
            started = time.time()
            res = run_unit(src, target, unit, timeout)
            results[unit] = res
            log.write("%s %s %s: %d passed, %d failed, %s (%.0fs)\n" % (
                target.kind, unit, res[2], res[0], res[1], "; ".join(res[3][:3]), time.time() - started))
            log.flush()
            if res[2] != "ok":
                target.restart()
    finally:
        target.stop()
    return results


def read_baseline(path):
    base = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 4 and not line.startswith("#"):
                    base[parts[0]] = (int(parts[1]), int(parts[2]), parts[3])
    return base


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True, help="the extracted Redis source tree")
    ap.add_argument("--floor", type=int, default=0, help="fail below this many tests passed through geproxy")
    ap.add_argument("--timeout", type=int, default=240, help="seconds one unit may take")
    ap.add_argument("--standalone", help="file of standalone results: read, or (with --measure-standalone) written")
    ap.add_argument("--measure-standalone", action="store_true")
    ap.add_argument("--only", nargs="*", help="these units only")
    ap.add_argument("--report", help="write the per-unit table here too (markdown)")
    ap.add_argument("--allow-hang", action="store_true",
                    help="do not fail when a unit hangs (its tests are lost either way, which the floor counts)")
    opts = ap.parse_args()
    names = opts.only or units(opts.src)
    tmp = tempfile.mkdtemp(prefix="geproxy-suite-")
    log = sys.stderr
    if opts.measure_standalone:
        alone = run_all(opts.src, Target("standalone", tmp), names, opts.timeout, log)
        with open(opts.standalone, "w") as f:
            f.write("# unit passed failed status: Redis %s suite against one redis-server, same flags\n"
                    % os.path.basename(opts.src.rstrip("/")))
            for unit, (p, n, status, _) in alone.items():
                f.write("%s %d %d %s\n" % (unit, p, n, status))
    base = read_baseline(opts.standalone) if opts.standalone else {}
    cluster = DevCluster(base_dir=os.path.join(tmp, "cluster"))
    cluster.start()
    try:
        proxied = run_all(opts.src, Target("geproxy", tmp, cluster), names, opts.timeout, log)
    finally:
        cluster.stop()
    rows = ["| unit | standalone passed | geproxy passed | geproxy failed | status | first failures |",
            "| --- | --- | --- | --- | --- | --- |"]
    for unit in names:
        p, n, status, failures = proxied[unit]
        b = base.get(unit, ("?", "?", "?"))
        rows.append("| %s | %s | %d | %d | %s | %s |" % (unit, b[0], p, n, status,
                                                       "; ".join(f.replace("|", "/") for f in failures[:3])))
    total = sum(r[0] for r in proxied.values())
    failed = sum(r[1] for r in proxied.values())
    base_total = sum(b[0] for u, b in base.items() if u in names)
    hung = [u for u, r in proxied.items() if r[2] == "hang"]
    aborted = [u for u, r in proxied.items() if r[2] == "aborted"]
    summary = ("through geproxy %d tests passed and %d failed (standalone redis-server: %d passed); "
               "units aborted: %s; units hung: %s" % (total, failed, base_total, ", ".join(aborted) or "none",
                                                       ", ".join(hung) or "none"))
    print("\n".join(rows))
    print("\n" + summary)
    if opts.report:
        with open(opts.report, "w") as f:
            f.write("\n".join(rows) + "\n\n" + summary + "\n")
    shutil.rmtree(tmp, ignore_errors=True)
    if hung and not opts.allow_hang:
        print("FAIL: units hung: %s" % ", ".join(hung))
        return 1
    if total < opts.floor:
        print("FAIL: %d tests passed through geproxy, below the floor of %d" % (total, opts.floor))
        return 1
    print("redis-suite: at or above the floor (%d)" % opts.floor)
    return 0


if __name__ == "__main__":
    sys.exit(main())
