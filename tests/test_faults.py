"""Faults under load, on a cluster of this module's own (never the shared one):
resharding while clients read and write, a master killed and failed over, a
master that accepts but never answers (SIGSTOP), a replica restarting, and
seeds that are partly or wholly unreachable at start-up.

All traffic goes to 127.0.0.1, from a handful of threads, for a few seconds.
"""

import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from cloudhelp import Forwarder
from conftest import HOST, ROOT, Proxy, free_port, render_config, wait_for
from geproxy.devcluster import command as node_command
from geproxy.slots import key_slot

NSLOTS = 16384


# -- small helpers (the module's own cluster: conftest's fc) --

def client(port, timeout=3.0):
    """redis-py without its own retries: every error must be seen by the test."""
    return redis.Redis(host=HOST, port=port, protocol=2, socket_timeout=timeout,
                       socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0))


def nodes(dc):
    """[(id, port, flags, master_id, [(first, last)])] from CLUSTER NODES of a live node."""
    for p in dc.alive():
        try:
            text = node_command(HOST, p, "CLUSTER", "NODES")
        except (OSError, RuntimeError):
            continue
        out = []
        for line in text.splitlines():
            w = line.split()
            if len(w) < 8:
                continue
            port = int(w[1].split("@")[0].rsplit(":", 1)[1])
            ranges = []
            for s in w[8:]:
                if not s.startswith("["):
                    a, _, b = s.partition("-")
                    ranges.append((int(a), int(b or a)))
            out.append((w[0], port, w[2].split(","), w[3], ranges))
        return out
    raise RuntimeError("no live node")


def node_id(dc, port):
    return node_command(HOST, port, "CLUSTER", "MYID")


def slot_owners(dc):
    owners = [None] * NSLOTS
    for _, port, flags, _, ranges in nodes(dc):
        if "master" in flags:
            for a, b in ranges:
                owners[a:b + 1] = [port] * (b - a + 1)
    return owners


def replica_of(dc, master_port):
    mid = node_id(dc, master_port)
    for _, port, flags, master_id, _ in nodes(dc):
        if "slave" in flags and master_id == mid and "fail" not in flags:
            return port
    raise AssertionError("master %d has no replica" % master_port)


def keys_where(prefix, pred, n):
    out, i = [], 0
    while len(out) < n:
        k = "%s:%d" % (prefix, i)
        if pred(key_slot(k.encode())):
            out.append(k)
        i += 1
    return out


def role(port):
    try:
        return node_command(HOST, port, "ROLE", timeout=0.5)[0]
    except (OSError, RuntimeError, ConnectionError):
        return None


def raw_info(port, section):
    with socket.create_connection((HOST, port), timeout=3) as s:
        s.sendall(b"*2\r\n$4\r\nINFO\r\n$%d\r\n%s\r\n" % (len(section), section.encode()))
        f = s.makefile("rb")
        head = f.readline()
        assert head[:1] == b"$", head
        return f.read(int(head[1:-2]) + 2)[:-2].decode()


def block_of(port, addr):
    for block in raw_info(port, "servers").split("\r\n\r\n"):
        d = dict(l.split(":", 1) for l in block.splitlines() if ":" in l and not l.startswith("#"))
        if d.get("Server") == addr:
            return d
    return {}




class Worker(threading.Thread):
    """SET then GET its own keys in a loop; checks every GET against the value
    it last wrote (its keys are its own, so anything else is a stale read).
    Records (start time, key, what) for each error and the times of successes."""

    def __init__(self, port, keys, stop, name, verify=True, pause=0.001):
        super().__init__(daemon=True, name=name)
        self.r = client(port, timeout=3.0)
        self.keys, self.stop, self.verify, self.pause = keys, stop, verify, pause
        self.errors, self.ok_times, self.last = [], [], {}
        self.ops = 0

    def run(self):
        rnd = random.Random(self.name)
        i = 0
        while not self.stop.is_set():
            key = self.keys[i % len(self.keys)]
            val = "%s:%d" % (self.name, i)
            i += 1
            t = time.time()
            try:
                assert self.r.set(key, val) is True
                self.last[key] = val
                got = self.r.get(key)
                if self.verify and got != val.encode():
                    self.errors.append((t, key, "stale GET: got %r, last written %r" % (got, val)))
                    continue
                old = rnd.choice(list(self.last))
                got = self.r.get(old)
                if self.verify and got != self.last[old].encode():
                    self.errors.append((t, old, "stale GET: got %r, last written %r" % (got, self.last[old])))
                    continue
                self.ok_times.append((t, time.time()))   # (started, finished)
                self.ops += 1
            except (redis.RedisError, AssertionError, OSError) as e:
                self.errors.append((t, key, "%s: %s" % (e.__class__.__name__, e)))
                time.sleep(0.01)
            if self.pause:
                time.sleep(self.pause)
        self.r.close()


class PipeWorker(Worker):
    """Pipelines mixing single-key and same-slot multi-key commands ({hashtag}
    keys): during a migration these meet ASK and TRYAGAIN."""

    def run(self):
        i = 0
        while not self.stop.is_set():
            tag = self.keys[i % len(self.keys)]
            a, b = "{%s}:a" % tag, "{%s}:b" % tag
            va, vb = "%s:%d:a" % (self.name, i), "%s:%d:b" % (self.name, i)
            i += 1
            t = time.time()
            try:
                pipe = self.r.pipeline(transaction=False)
                pipe.set(a, va).mset({b: vb}).mget(a, b).get(b)
                got = pipe.execute(raise_on_error=True)
                want = [True, True, [va.encode(), vb.encode()], vb.encode()]
                if got != want:
                    self.errors.append((t, tag, "pipeline: got %r, want %r" % (got, want)))
                    continue
                self.ok_times.append((t, time.time()))
                self.ops += 1
            except (redis.RedisError, OSError) as e:
                self.errors.append((t, tag, "%s: %s" % (e.__class__.__name__, e)))
                time.sleep(0.01)
            time.sleep(self.pause)
        self.r.close()


def run_workers(workers):
    for w in workers:
        w.start()
    return workers


def join_workers(workers, stop):
    stop.set()
    for w in workers:
        w.join(10)
        assert not w.is_alive(), "worker %s hung" % w.name


# -- the tests --

def test_resharding_under_load(fc, proxies):
    fc.wait_ok()
    p = proxies(fc)
    owners = slot_owners(fc)
    src, dst = sorted(set(owners))[:2]
    moving = set([s for s in range(NSLOTS) if owners[s] == src][:300])  # redis-cli takes the lowest
    stop = threading.Event()
    workers = []
    for t in range(8):
        keys = keys_where("rs%d" % t, lambda s: s in moving, 40) + \
            keys_where("rs%d:o" % t, lambda s: s not in moving, 10)
        workers.append(Worker(p.port, keys, stop, "rs-w%d" % t))
    for t in range(2):
        workers.append(PipeWorker(p.port, keys_where("rs-p%d" % t, lambda s: s in moving, 30), stop, "rs-p%d" % t))
    run_workers(workers)
    time.sleep(0.5)
    t0 = time.time()
    try:
        cli = subprocess.run(
            ["redis-cli", "--cluster", "reshard", "%s:%d" % (HOST, src),
             "--cluster-from", node_id(fc, src), "--cluster-to", node_id(fc, dst),
             "--cluster-slots", "300", "--cluster-yes"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=90)
        took = time.time() - t0
        time.sleep(1.0)
    finally:
        join_workers(workers, stop)
    out = cli.stdout.decode(errors="replace")
    assert cli.returncode == 0, out[-3000:]
    after = slot_owners(fc)
    assert all(after[s] == dst for s in moving), "reshard did not move the slots:\n" + out[-2000:]
    errors = sorted(e for w in workers for e in w.errors)
    ops = sum(w.ops for w in workers)
    assert ops > 200, "too little traffic during the reshard (%d ops in %.1fs)" % (ops, took)
    assert not errors, "%d client errors during a %.1fs reshard (%d ok ops); first: %s\nproxy log:\n%s" % (
        len(errors), took, ops, errors[:5], p.log_tail(30))
    fc.wait_ok()


def test_failover_under_load(fc, proxies):
    fc.wait_ok()
    p = proxies(fc, pool={"ServerTimeout": 1, "ServerFailureLimit": 3, "ServerRetryTimeout": 1,
                          "RefreshInterval": 1})
    owners = slot_owners(fc)
    victim = owners[key_slot(b"failover-victim")]
    promoted = replica_of(fc, victim)
    others = sorted(set(owners) - {victim})
    vaddr = "%s:%d" % (HOST, victim)

    # writes acknowledged well before the kill must survive it
    c = client(p.port)
    pre = keys_where("fo:pre", lambda s: True, 60)
    for k in pre:
        assert c.set(k, "pre-" + k) is True
    vpre = [k for k in pre if owners[key_slot(k.encode())] == victim]
    assert vpre
    time.sleep(1.1)

    stop = threading.Event()
    vworkers = [Worker(p.port, keys_where("fo:v%d" % t, lambda s: owners[s] == victim, 20), stop,
                       "fo-v%d" % t, verify=False) for t in range(3)]
    oworkers = [Worker(p.port, keys_where("fo:o%d" % t, lambda s: owners[s] in others, 20), stop,
                       "fo-o%d" % t) for t in range(3)]
    run_workers(vworkers + oworkers)
    time.sleep(0.5)
    t_kill = time.time()
    t_promo = t_first_ok = None
    try:
        fc.kill(victim)
        deadline = t_kill + 20
        while time.time() < deadline and (t_promo is None or t_first_ok is None):
            if t_promo is None and role(promoted) == "master":
                t_promo = time.time()
            if t_first_ok is None:
                # a success counts only if the op started after the kill
                oks = [end for w in vworkers for start, end in list(w.ok_times) if start > t_kill]
                if oks:
                    t_first_ok = min(oks)
            time.sleep(0.02)
        time.sleep(1.0)
    finally:
        join_workers(vworkers + oworkers, stop)
    log = p.log_tail(40)
    assert t_promo is not None, "replica %d never promoted\n%s" % (promoted, fc.log_tail(promoted))
    assert t_first_ok is not None, "keys of the killed master never served again\nproxy log:\n" + log
    print("kill->promotion %.2fs, kill->first success %.2fs, promotion->first success %.2fs"
          % (t_promo - t_kill, t_first_ok - t_kill, t_first_ok - t_promo))
    assert t_first_ok - t_kill < 8, "first success %.2fs after the kill" % (t_first_ok - t_kill)
    assert t_first_ok - t_promo < 5, "first success %.2fs after promotion" % (t_first_ok - t_promo)
    # errors only until served again (ops started 0.2s after the first success must all succeed)
    late = [e for w in vworkers for e in w.errors if e[0] > t_first_ok + 0.2]
    assert not late, "errors after the promoted replica was serving: %s\n%s" % (late[:5], log)
    # Other masters' slots: while a master is FAIL and not yet replaced, Redis Cluster itself
    # answers CLUSTERDOWN for every slot (cluster-require-full-coverage): those are passed on;
    # anything else, or any error once the failed slots are served again, is the proxy's.
    bad = [e for w in oworkers for e in w.errors if "The cluster is down" not in e[2] or e[0] > t_first_ok + 0.2]
    assert not bad, "clients of the other masters saw errors: %s\n%s" % (bad[:5], log)
    down = [e for w in oworkers for e in w.errors]
    print("other masters' clients: %d CLUSTERDOWN from the cluster between %.2fs and %.2fs after the kill"
          % (len(down), min([e[0] for e in down] or [t_kill]) - t_kill, max([e[0] for e in down] or [t_kill]) - t_kill))
    assert sum(w.ops for w in oworkers) > 100

    c = client(p.port)
    for k in pre:
        assert c.get(k) == ("pre-" + k).encode(), k

    blk = wait_for(lambda: block_of(p.port, vaddr).get("CurrentIsFail") == "1" and block_of(p.port, vaddr), 5)
    assert blk, "INFO Servers does not show %s as failed: %s" % (vaddr, block_of(p.port, vaddr))

    fc.restart(victim)
    t = time.time()
    back = wait_for(lambda: (lambda b: b.get("CurrentIsFail") == "0" and b.get("Role") == "slave" and b)(
        block_of(p.port, vaddr)), 15, step=0.2)
    assert back, "after restart %s is still %s (%.1fs)\n%s" % (
        vaddr, block_of(p.port, vaddr), time.time() - t, p.log_tail(20))
    assert role(victim) == "slave"
    fc.wait_ok()
    for k in pre:
        assert c.get(k) == ("pre-" + k).encode(), k
    c.close()


def test_backend_that_never_answers(fc, proxies):
    fc.wait_ok()
    p = proxies(fc, pool={"ServerTimeout": "300ms", "ServerFailureLimit": 2, "ServerRetryTimeout": 2,
                          "RefreshInterval": 1})
    owners = slot_owners(fc)
    victim = owners[key_slot(b"stop-victim")]
    vkeys = keys_where("stop:v", lambda s: owners[s] == victim, 5)
    okeys = keys_where("stop:o", lambda s: owners[s] != victim, 10)
    c = client(p.port, timeout=5)
    for k in vkeys + okeys:
        assert c.set(k, k) is True        # the links are up before the node stops
    pid = fc.procs[victim].pid
    timings, fast, other = [], [], []
    os.kill(pid, signal.SIGSTOP)
    t_stop = time.time()
    try:
        for k in vkeys[:2]:               # each waits at most ServerTimeout, then fails
            t = time.time()
            with pytest.raises(redis.ResponseError) as ei:
                c.get(k)
            timings.append((time.time() - t, str(ei.value)))
        for k in vkeys:                   # now marked failed: answered at once
            t = time.time()
            with pytest.raises(redis.ResponseError, match="marked failed") as ei:
                c.get(k)
            fast.append(time.time() - t)
        d = client(p.port, timeout=5)
        for k in okeys:                   # other slots are unaffected
            t = time.time()
            assert d.get(k) == k.encode()
            other.append(time.time() - t)
        d.close()
        stopped_for = time.time() - t_stop
    finally:
        os.kill(pid, signal.SIGCONT)
    print("first two failures: %s; marked failed: max %.3fs; other slots: max %.3fs; stopped %.2fs"
          % (timings, max(fast), max(other), stopped_for))
    assert stopped_for < 1.8, "the node was stopped %.2fs (cluster node timeout is 2s)" % stopped_for
    for dt, msg in timings:
        assert dt <= 1.0, "a request to the stopped node took %.2fs (%s)" % (dt, msg)
    assert max(fast) < 0.2, fast           # a wait would be ServerTimeout, 0.3 s
    assert max(other) < 0.2, other
    assert wait_for(lambda: _get_or_none(c, vkeys[0]) == vkeys[0].encode(), 5, 0.1), \
        "slots of the resumed node not served again\n" + p.log_tail(20)
    c.close()


def _get_or_none(c, k):
    try:
        return c.get(k)
    except redis.RedisError:
        return None


def test_replica_restart_does_not_disturb_clients(fc, proxies):
    fc.wait_ok()
    p = proxies(fc)                        # conftest defaults: reads on masters only
    replica = fc.replicas()[0]
    stop = threading.Event()
    workers = run_workers([Worker(p.port, keys_where("rr%d" % t, lambda s: True, 30), stop, "rr-w%d" % t)
                           for t in range(6)])
    try:
        time.sleep(0.5)
        fc.kill(replica)
        time.sleep(3.0)                    # > cluster-node-timeout: the cluster flags it failed
        fc.restart(replica)
        fc.wait_ok()
        time.sleep(1.0)
    finally:
        join_workers(workers, stop)
    errors = sorted(e for w in workers for e in w.errors)
    ops = sum(w.ops for w in workers)
    assert ops > 300, ops
    assert not errors, "%d errors while replica %d restarted: %s\n%s" % (len(errors), replica, errors[:5],
                                                                       p.log_tail(20))


def spawn_unready(cluster, pool, timeout=10):
    """A proxy whose seeds may all be dead: ready when it answers anything at all."""
    port = free_port()
    tmpdir = tempfile.mkdtemp(prefix="geproxy-test-")
    conf, logp = os.path.join(tmpdir, "proxy.conf"), os.path.join(tmpdir, "proxy.log")
    with open(conf, "w") as f:
        f.write(render_config(cluster, port, None, pool))
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=ROOT)
    with open(logp, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "geproxy", "-c", conf], cwd=ROOT, env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    p = Proxy(port, proc, logp, conf, tmpdir)
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            with socket.create_connection((HOST, port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(100):
                    return p
        except OSError:
            time.sleep(0.05)
    tail = p.log_tail()
    p.stop()
    raise AssertionError("proxy with dead seeds did not come up (rc %s):\n%s" % (proc.returncode, tail))


def test_seeds_partly_unreachable(fc, proxies):
    p = proxies(fc, pool={"Servers": ["%s:%d" % (HOST, free_port()), fc.addrs[-1]]})
    c = client(p.port)
    for i in range(20):
        k = "seeds:%d" % i
        assert c.set(k, i) is True and c.get(k) == str(i).encode()
    c.close()


def test_only_dead_seeds_then_one_comes_up(fc):
    dead = [free_port(), free_port()]
    p = spawn_unready(fc, {"Servers": ["%s:%d" % (HOST, d) for d in dead], "RefreshInterval": 1})
    relay = None
    try:
        assert p.proc.poll() is None
        c = client(p.port)
        for cmd in (b"*2\r\n$3\r\nGET\r\n$11\r\ndeadseeds:k\r\n",
                    b"*3\r\n$3\r\nSET\r\n$11\r\ndeadseeds:k\r\n$1\r\nv\r\n"):
            reply = _raw_reply(p.port, cmd)
            assert reply.startswith(b"-CLUSTERDOWN "), reply
        with pytest.raises(redis.exceptions.ClusterDownError):
            c.get("deadseeds:k")
        ping = _ping_reply(p.port)
        print("PING with no reachable seed:", ping)
        assert "no cluster node reachable" in p.log(), p.log_tail(10)
        # one seed address starts answering (a relay to a live node): the proxy learns the cluster
        relay = Forwarder(fc.masters()[0], port=dead[1])   # started
        t = time.time()
        ok = wait_for(lambda: _set_ok(c, "deadseeds:k", "v"), 5, 0.1)
        assert ok, "proxy did not pick up the seed that came up\n" + p.log_tail(20)
        print("served %.2fs after the seed came up" % (time.time() - t))
        assert c.get("deadseeds:k") == b"v"
        for i in range(20):
            assert c.set("deadseeds:%d" % i, i) is True
        c.close()
    finally:
        p.stop()
        if relay is not None:
            relay.close()


def _set_ok(c, k, v):
    try:
        return c.set(k, v) is True
    except redis.RedisError:
        return False


def _raw_reply(port, data):
    with socket.create_connection((HOST, port), timeout=2) as s:
        s.sendall(data)
        return s.recv(200)


def _ping_reply(port):
    return _raw_reply(port, b"PING\r\n")


def test_local_commands_answered_before_the_cluster_is_reached(fc):
    """README: the proxy answers PING, ECHO, QUIT, HELLO, INFO, CLUSTER KEYSLOT itself.
    With no seed reachable those need no backend, and INFO is what an operator
    would look at to see why."""
    p = spawn_unready(fc, {"Servers": ["%s:%d" % (HOST, free_port())]})
    try:
        got = {}
        for name, data in [("PING", b"PING\r\n"), ("ECHO", b"ECHO hi\r\n"),
                           ("CLUSTER KEYSLOT", b"CLUSTER KEYSLOT a\r\n"), ("INFO", b"INFO proxy\r\n"),
                           ("QUIT", b"QUIT\r\n")]:
            got[name] = _raw_reply(p.port, data)
        assert got["PING"] == b"+PONG\r\n" and got["ECHO"] == b"$2\r\nhi\r\n" and \
            got["CLUSTER KEYSLOT"] == b":15495\r\n" and got["INFO"].startswith(b"$") and \
            got["QUIT"] == b"+OK\r\n", got
    finally:
        p.stop()


def test_idle_private_connection_closed_by_its_node(fc, proxies):
    """A node that closes the proxy's idle private connections (CLIENT KILL,
    its `timeout`, a restart) costs the next client nothing: CONFIG SET, which
    goes to every node on private connections, still answers OK."""
    p = proxies(fc)
    r = redis.Redis(host=HOST, port=p.port, socket_timeout=10)
    try:
        assert r.config_set("slowlog-max-len", "129")
        killed = 0
        for port in fc.ports:
            for line in node_command(HOST, port, "CLIENT", "LIST").splitlines():
                fields = dict(f.split("=", 1) for f in line.split(" ") if "=" in f)
                if fields.get("cmd") == "config|set":
                    killed += node_command(HOST, port, "CLIENT", "KILL", "ID", fields["id"])
        assert killed >= len(fc.ports), "the proxy's CONFIG SET connections were not found"
        for _ in range(3):
            assert r.config_set("slowlog-max-len", "128")
    finally:
        r.close()
