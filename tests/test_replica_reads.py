"""Where reads go (geproxy/readpolicy.py, predixy's read priorities): a read goes
to the healthy member of the slot's group (master + its replicas) with the
highest priority, ties spread at random, priority 0 never; writes always go to
the master.  Checked with each node's own INFO commandstats (deltas of
cmdstat_get / cmdstat_set), on the shared cluster (no kills there); the
fallback when replicas fail uses a cluster of its own.
"""

import socket
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from conftest import HOST, start_proxy
from geproxy.devcluster import command as node_command
from geproxy.slots import key_slot

N_PER_GROUP = 60


def client(port):
    return redis.Redis(host=HOST, port=port, protocol=2, socket_timeout=5, retry=Retry(NoBackoff(), 0))


def topology(cluster):
    """{master port: replica port} and slot -> master port, from CLUSTER NODES."""
    text = node_command(HOST, cluster.masters()[0], "CLUSTER", "NODES")
    rows = [l.split() for l in text.splitlines() if l.strip()]
    port_of = {r[0]: int(r[1].split("@")[0].rsplit(":", 1)[1]) for r in rows}
    groups, owners = {}, [None] * 16384
    for r in rows:
        flags = r[2].split(",")
        if "fail" in flags:
            continue
        if "master" in flags:
            groups.setdefault(port_of[r[0]], None)
            for word in r[8:]:
                if not word.startswith("["):
                    a, _, b = word.partition("-")
                    owners[int(a):int(b or a) + 1] = [port_of[r[0]]] * (int(b or a) - int(a) + 1)
    for r in rows:
        flags = r[2].split(",")
        if "slave" in flags and "fail" not in flags and port_of.get(r[3]) in groups:
            groups[port_of[r[3]]] = port_of[r[0]]
    assert all(groups.values()), "every master needs a replica: %s" % groups
    return groups, owners


def keys_by_master(owners, prefix, n):
    out = {}
    i = 0
    while len(out) < len(set(owners)) or any(len(v) < n for v in out.values()):
        k = "%s:%d" % (prefix, i)
        i += 1
        lst = out.setdefault(owners[key_slot(k.encode())], [])
        if len(lst) < n:
            lst.append(k)
    return out


def cmdstats(cluster_or_port, ports):
    """port -> {'get': calls, 'set': calls, 'set_rejected': rejected_calls}."""
    out = {}
    for p in ports:
        c = redis.Redis(host=HOST, port=p, protocol=2)
        s = c.info("commandstats")
        c.close()
        out[p] = {"get": s.get("cmdstat_get", {}).get("calls", 0),
                  "set": s.get("cmdstat_set", {}).get("calls", 0),
                  "set_rejected": s.get("cmdstat_set", {}).get("rejected_calls", 0),
                  "get_rejected": s.get("cmdstat_get", {}).get("rejected_calls", 0)}
    return out


def delta(before, after):
    return {p: {k: after[p][k] - before[p][k] for k in after[p]} for p in after}


def addr(port):
    return "%s:%d" % (HOST, port)


def raw_info_servers(port):
    """The proxy's INFO `# Servers` section: addr -> {field: value}."""
    with socket.create_connection((HOST, port), timeout=3) as s:
        s.sendall(b"*2\r\n$4\r\nINFO\r\n$7\r\nservers\r\n")
        f = s.makefile("rb")
        head = f.readline()
        assert head[:1] == b"$", head
        text = f.read(int(head[1:-2]) + 2)[:-2].decode()
    blocks = {}
    for block in text.split("\r\n\r\n"):
        d = dict(l.split(":", 1) for l in block.splitlines() if ":" in l and not l.startswith("#"))
        if "Server" in d:
            blocks[d["Server"]] = d
    return blocks


@pytest.fixture(scope="module")
def data(cluster):
    """Keys per master written once (directly via a proxy that reads from masters)."""
    groups, owners = topology(cluster)
    keys = keys_by_master(owners, "rr:data", N_PER_GROUP)
    p = start_proxy(cluster)
    c = client(p.port)
    for lst in keys.values():
        for k in lst:
            assert c.set(k, "v:" + k) is True
    c.close()
    p.stop()
    time.sleep(0.5)                       # replicated
    return groups, owners, keys


def read_all(port, keys, rounds=1):
    c = client(port)
    try:
        for _ in range(rounds):
            for lst in keys.values():
                for k in lst:
                    assert c.get(k) == ("v:" + k).encode(), k
    finally:
        c.close()


def nodes_of(groups):
    return sorted(list(groups) + list(groups.values()))


def test_replicas_only_with_master_priority_zero(cluster, proxies, data):
    groups, owners, keys = data
    p = proxies(cluster, pool={"MasterReadPriority": 0, "DynamicSlaveReadPriority": 100,
                               "Servers": [addr(m) for m in groups]})   # replicas learned: dynamic
    read_all(p.port, {m: keys[m][:1] for m in keys})   # links up
    before = cmdstats(cluster, nodes_of(groups))
    read_all(p.port, keys)
    c = client(p.port)
    wk = keys_by_master(owners, "rr:w0", 5)
    writes = {m: wk[m] for m in groups}
    for lst in writes.values():
        for k in lst:
            assert c.set(k, "w") is True
    c.close()
    d = delta(before, cmdstats(cluster, nodes_of(groups)))
    for m, r in groups.items():
        assert d[m]["get"] == 0, "master %d served %d GETs (MasterReadPriority 0): %s" % (m, d[m]["get"], d)
        assert d[r]["get"] == N_PER_GROUP, "replica %d served %d of %d GETs: %s" % (r, d[r]["get"], N_PER_GROUP, d)
        assert d[m]["set"] == len(writes[m]), d          # writes on the master
        assert d[r]["set_rejected"] == 0, "a SET was sent to replica %d: %s" % (r, d)
        assert d[r]["get_rejected"] == 0, d


def test_equal_priorities_spread_reads(cluster, proxies, data):
    groups, owners, keys = data
    p = proxies(cluster, pool={"MasterReadPriority": 50, "DynamicSlaveReadPriority": 50,
                               "Servers": [addr(m) for m in groups]})
    read_all(p.port, {m: keys[m][:1] for m in keys})
    before = cmdstats(cluster, nodes_of(groups))
    rounds = 3
    read_all(p.port, keys, rounds)
    d = delta(before, cmdstats(cluster, nodes_of(groups)))
    total = rounds * N_PER_GROUP
    for m, r in groups.items():
        assert d[m]["get"] + d[r]["get"] == total, d
        assert d[m]["get"] > 0.2 * total and d[r]["get"] > 0.2 * total, \
            "group of %d: master %d GETs, replica %d GETs (want both)" % (m, d[m]["get"], d[r]["get"])


def test_static_priority_applies_to_replicas_in_servers(cluster, proxies, data):
    groups, owners, keys = data
    masters = sorted(groups)
    listed = groups[masters[0]]           # the only replica named in Servers
    p = proxies(cluster, pool={"MasterReadPriority": 50, "StaticSlaveReadPriority": 100,
                               "DynamicSlaveReadPriority": 0,
                               "Servers": [addr(m) for m in masters] + [addr(listed)]})
    read_all(p.port, {m: keys[m][:1] for m in keys})
    before = cmdstats(cluster, nodes_of(groups))
    read_all(p.port, keys)
    d = delta(before, cmdstats(cluster, nodes_of(groups)))
    assert d[listed]["get"] == N_PER_GROUP and d[masters[0]]["get"] == 0, d
    for m in masters[1:]:                 # their replicas are dynamic, priority 0: masters serve
        assert d[m]["get"] == N_PER_GROUP and d[groups[m]]["get"] == 0, d

    # every replica listed in Servers, static priority 0, dynamic 100: no replica reads at all
    q = proxies(cluster, pool={"MasterReadPriority": 50, "StaticSlaveReadPriority": 0,
                               "DynamicSlaveReadPriority": 100})
    read_all(q.port, {m: keys[m][:1] for m in keys})
    before = cmdstats(cluster, nodes_of(groups))
    read_all(q.port, keys)
    d = delta(before, cmdstats(cluster, nodes_of(groups)))
    for m, r in groups.items():
        assert d[m]["get"] == N_PER_GROUP and d[r]["get"] == 0, d


DC_CONF = """[DataCenter]
  [[a]]
  AddrPrefix = 127.0.0.1:{replica}
  ReadPolicy = a 100, b 10
  [[b]]
  AddrPrefix = 127.0.0.1
  ReadPolicy = b 100, a 10
"""


def test_data_centers(cluster, proxies, data):
    groups, owners, keys = data
    masters = sorted(groups)
    m_a = masters[0]
    x = groups[m_a]                       # the one node of DC a
    conf = DC_CONF.format(replica=x)
    # role priorities must be above 0 (predixy: a 0 role priority is never read, DC or not)
    pool = {"MasterReadPriority": 50, "StaticSlaveReadPriority": 50, "DynamicSlaveReadPriority": 50}
    pa = proxies(cluster, top={"LocalDC": "a"}, pool=pool, extra_conf=conf)
    pb = proxies(cluster, top={"LocalDC": "b"}, pool=pool, extra_conf=conf)

    blocks = raw_info_servers(pa.port)
    for port in nodes_of(groups):
        assert blocks[addr(port)]["DC"] == ("a" if port == x else "b"), blocks[addr(port)]

    read_all(pa.port, {m: keys[m][:1] for m in keys})
    read_all(pb.port, {m: keys[m][:1] for m in keys})
    before = cmdstats(cluster, nodes_of(groups))
    read_all(pa.port, keys, 2)            # from DC a: x (a 100) beats its master (b 10)
    d = delta(before, cmdstats(cluster, nodes_of(groups)))
    assert d[x]["get"] == 2 * N_PER_GROUP and d[m_a]["get"] == 0, d
    for m in masters[1:]:                 # both in DC b, equal roles: spread
        r = groups[m]
        assert d[m]["get"] + d[r]["get"] == 2 * N_PER_GROUP, d
        assert d[m]["get"] > 0 and d[r]["get"] > 0, d

    before = cmdstats(cluster, nodes_of(groups))
    read_all(pb.port, keys, 2)            # from DC b: the master (b 100) beats x (a 10)
    d = delta(before, cmdstats(cluster, nodes_of(groups)))
    assert d[m_a]["get"] == 2 * N_PER_GROUP and d[x]["get"] == 0, d
    for m in masters[1:]:
        r = groups[m]
        assert d[m]["get"] > 0 and d[r]["get"] > 0, d


# -- fallback when replicas fail: a cluster of this module's own --

def test_reads_fall_back_to_the_master_when_the_replica_fails(fc, proxies):
    groups, owners = topology(fc)
    m = sorted(groups)[0]
    r = groups[m]
    keys = keys_by_master(owners, "rr:fb", 20)
    mkeys = {m: keys[m]}
    w = start_proxy(fc)
    c = client(w.port)
    for lst in keys.values():
        for k in lst:
            c.set(k, "v:" + k)
    c.close()
    w.stop()
    time.sleep(0.5)
    # MasterReadPriority above 0 and 0: with no healthy replica both must read from the master
    pp = [proxies(fc, pool={"MasterReadPriority": mp, "DynamicSlaveReadPriority": 100,
                             "Servers": [addr(x) for x in groups]}) for mp in (10, 0)]
    for p in pp:
        read_all(p.port, keys)
    before = cmdstats(fc, [m, r])
    for p in pp:
        read_all(p.port, mkeys)
    d = delta(before, cmdstats(fc, [m, r]))
    assert d[r]["get"] == 2 * len(mkeys[m]) and d[m]["get"] == 0, d

    fc.kill(r)
    t_kill = time.time()
    errors = []
    try:
        # until each proxy knows the replica is down (its fc failure count, or the cluster's flag)
        for p in pp:
            deadline = time.time() + 10
            while raw_info_servers(p.port).get(addr(r), {}).get("CurrentIsFail") != "1":
                assert time.time() < deadline, "proxy never marked the dead replica failed"
                c = client(p.port)
                try:
                    c.get(mkeys[m][0])
                except redis.RedisError as e:
                    errors.append(str(e))
                finally:
                    c.close()
                time.sleep(0.05)
        # wait for the cluster's fc FAIL flag so the proxy's retry of the replica stops
        deadline = time.time() + 10
        while not all(raw_info_servers(p.port).get(addr(r), {}).get("CurrentIsFail") == "1" for p in pp) or \
                r not in _cluster_failed(fc):
            assert time.time() < deadline, "the cluster never flagged replica %d" % r
            time.sleep(0.1)
        time.sleep(1.2)                   # a refresh after the flag
        before = cmdstats(fc, [m])
        for p in pp:
            for _ in range(3):
                read_all(p.port, mkeys)   # no errors allowed now
        d = delta(before, cmdstats(fc, [m]))
        assert d[m]["get"] == 2 * 3 * len(mkeys[m]), d
        print("errors while the proxies learned replica %d was down (%.1fs): %d, e.g. %s"
              % (r, time.time() - t_kill, len(errors), errors[:2]))
    finally:
        fc.restart(r)
        fc.wait_ok()
    # back: reads return to the replica
    def on_replica():
        b = cmdstats(fc, [r])
        for p in pp:
            try:
                read_all(p.port, mkeys)
            except (redis.RedisError, AssertionError):
                return False
        return delta(b, cmdstats(fc, [r]))[r]["get"] == 2 * len(mkeys[m])
    deadline = time.time() + 10
    while not on_replica():
        assert time.time() < deadline, "reads never went back to the restarted replica"
        time.sleep(0.3)


def _cluster_failed(cluster):
    out = set()
    for p in cluster.alive():
        text = node_command(HOST, p, "CLUSTER", "NODES")
        for l in text.splitlines():
            w = l.split()
            if len(w) > 2 and "fail" in w[2].split(","):
                out.add(int(w[1].split("@")[0].rsplit(":", 1)[1]))
        return out
    return out
