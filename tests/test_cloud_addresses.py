"""Clusters whose addresses change (issue 19, predixy issues 120/157: "no server
connection available" in Kubernetes until the proxy was restarted).

A stand-in for a cloud service address (a TCP forwarder) is the only seed; the
whole cluster is stopped and another takes over behind the same seed; a
cluster comes back on the same addresses with new node ids; nodes announce a
host name; a seed is a node that is in no cluster yet.  The proxy is never
restarted.  Each test brings its own clusters (the shared one only as the
cluster that takes over), all on 127.0.0.1.
"""

import subprocess
import sys
import time

import pytest
import redis

from cloudhelp import BlackHole, Forwarder, Recorder, lone_node, named_cluster, open_fds, resource, servers
from clusterhelp import keys_per_master
from conftest import HOST, ROOT, wait_for
from geproxy.devcluster import DevCluster, command as node_command

RECOVERY = 15.0     # "within a few RefreshIntervals" (RefreshInterval 1), with room for a busy machine
REPLY = 6.0         # the longest any reply may take while no node answers: an error, not a hang


def client(port):
    return redis.Redis(host=HOST, port=port, protocol=2, socket_timeout=10)


def set_everywhere(c, keys):
    """SET each key (one per master); True when all are OK."""
    try:
        return all(c.set(k, "v") is True for k in keys)
    except redis.RedisError:
        return False


def gap_replies(log, longest=REPLY):
    """Every reply is +OK or a -ERR / -CLUSTERDOWN error, none took longer than `longest`."""
    for t, took, reply in log:
        assert took is not None, "a reply never came: %r" % reply
        assert took < longest, "a reply took %.1fs: %r" % (took, reply)
        assert reply == b"+OK\r\n" or reply.startswith((b"-ERR ", b"-CLUSTERDOWN ")), reply


@pytest.mark.parametrize("gone", ["refused", "black-holed"])
def test_whole_cluster_replaced_behind_one_seed(cluster, proxies, gone):
    """All pods replaced: the old cluster stops, a new one on other ports takes
    over behind the same seed; the proxy rebuilds its topology by itself.  The
    old addresses refuse connections, or (black-holed, as a gone pod's IP)
    let them time out; then ServerTimeout is left at its default (0: dials
    give up after 5 s, topology queries after 2 s)."""
    old = DevCluster().start()
    fwd = Forwarder(old.ports[0])
    hole = None
    longest = REPLY if gone == "refused" else 5.0 + REPLY
    try:
        pool = {"Servers": [fwd.addr], "RefreshInterval": 1}
        if gone == "black-holed":
            pool["ServerTimeout"] = 0
        p = proxies(old, pool=pool)
        keys = [ks[0] for ks in keys_per_master(old, "cloud").values()]
        c = client(p.port)
        assert set_everywhere(c, keys)
        assert {s["Server"] for s in servers(p.port)} == set(old.addrs)
        greenlets, sockets = resource(p.port, "Greenlets"), open_fds(p.pid)

        rec = Recorder(p.port, "cloud:gap")
        time.sleep(0.5)
        down = time.time()
        old.stop()
        if gone == "black-holed":
            hole = BlackHole(old.ports)
        time.sleep(2.0)                     # no node answers: the clients get errors
        fwd.target = cluster.ports[0]       # the service now reaches the new cluster's pods
        switched = time.time()
        served = wait_for(lambda: any(t > switched and r == b"+OK\r\n" for t, _, r in rec.log), RECOVERY, 0.1)
        first = min((t for t, _, r in rec.log if t > switched and r == b"+OK\r\n"), default=None)
        time.sleep(1.0)
        log = rec.finish()
        assert served, "no success %.0fs after the new cluster was behind the seed\n%s" % (RECOVERY, p.log_tail(30))
        print("%s: served again %.2fs after the switch; %d errors while no node answered, the slowest in %.2fs"
              % (gone, first - switched, sum(r != b"+OK\r\n" for t, _, r in log),
                 max(took for t, took, r in log if r != b"+OK\r\n")))
        gap_replies(log, longest)
        assert any(down < t < switched and r != b"+OK\r\n" for t, _, r in log), "the gap was not seen"
        assert all(r == b"+OK\r\n" for t, _, r in log if t >= first), \
            [r for t, _, r in log if t >= first and r != b"+OK\r\n"][:5]

        new_keys = [ks[0] for ks in keys_per_master(cluster, "cloud:new").values()]
        assert set_everywhere(c, new_keys) and c.get(new_keys[0]) == b"v"
        assert p.proc.poll() is None
        # one Server per new node, none of the old cluster's left, nothing of them leaked
        after = servers(p.port)
        assert {s["Server"] for s in after} == set(cluster.addrs), [s["Server"] for s in after]
        assert all(int(s["Connections"]) <= 1 for s in after), after
        assert resource(p.port, "Greenlets") <= greenlets + 2
        assert open_fds(p.pid) <= sockets + 2, (open_fds(p.pid), sockets)
        if gone == "refused":       # black-holed, one slow refresh may span the whole gap
            assert "topology refresh works again" in p.log()
        c.close()
    finally:
        fwd.close()
        old.stop()
        if hole is not None:
            hole.close()


def test_cluster_back_on_the_same_addresses_with_new_node_ids(proxies):
    """The same addresses, new nodes (pods back empty, new node ids): what the
    proxy held for the old nodes (idle private connections) is not reused."""
    old = DevCluster().start()
    new = None
    try:
        p = proxies(old, pool={"RefreshInterval": 1})
        keys = [ks[0] for ks in keys_per_master(old, "ids").values()]
        c = client(p.port)
        assert set_everywhere(c, keys)
        for k in keys:      # leaves an idle private connection on every master
            assert c.blpop(["{%s}l" % k], 0.05) is None
        old_ids = {s["Group"] for s in servers(p.port) if s["Role"] == "master"}
        ports = old.ports
        old.stop()
        assert not set_everywhere(c, keys)
        new = DevCluster(ports=ports).start()
        up = time.time()
        served = wait_for(lambda: set_everywhere(c, keys), RECOVERY, 0.1)
        assert served, "not served %.0fs after the new cluster was up\n%s" % (RECOVERY, p.log_tail(30))
        print("served again %.2fs after the new cluster was up" % (time.time() - up))
        masters = {"%s:%d" % (HOST, port): node_command(HOST, port, "CLUSTER", "MYID") for port in new.masters()}
        infos = wait_for(lambda: [s for s in servers(p.port) if s["Role"] == "master"] if
                         {s["Server"]: s["Group"] for s in servers(p.port) if s["Role"] == "master"} == masters
                         else None, RECOVERY, 0.2)
        assert infos, (servers(p.port), masters)
        assert not old_ids & set(masters.values())
        for k in keys:      # on the new nodes' connections, not the old nodes' idle ones
            assert c.blpop(["{%s}l" % k], 0.05) is None
        assert c.get(keys[0]) == b"v"
        assert p.proc.poll() is None
        c.close()
    finally:
        old.stop()
        if new is not None:
            new.stop()


def test_nodes_announcing_host_names_are_one_server_each(proxies):
    """cluster-announce-hostname + cluster-preferred-endpoint-type hostname:
    MOVED, ASK and CLUSTER SLOTS say localhost:port, CLUSTER NODES also
    127.0.0.1:port.  One Server (and one link) per node; redirects followed."""
    dc = named_cluster("localhost")
    try:
        p = proxies(dc, pool={"Servers": ["localhost:%d" % dc.ports[0]], "RefreshInterval": 60})
        by_master = keys_per_master(dc, "named", 2)     # the second key's slot stays empty
        c = client(p.port)
        assert set_everywhere(c, [ks[0] for ks in by_master.values()])
        named = {"localhost:%d" % port for port in dc.ports}
        assert {s["Server"] for s in servers(p.port)} == named

        # ASK, then MOVED, both in the cluster's spelling (localhost:port)
        src, dst = list(by_master)[:2]
        key = by_master[src][1]
        slot = node_command(HOST, src, "CLUSTER", "KEYSLOT", key)
        src_id, dst_id = (node_command(HOST, x, "CLUSTER", "MYID") for x in (src, dst))
        node_command(HOST, dst, "CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        node_command(HOST, src, "CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        try:
            assert c.get(key) is None       # ASK followed (the key is not on src)
            assert c.set(key, "moved") is True
            seen = servers(p.port)
            assert {s["Server"] for s in seen} == named, seen
            assert all(int(s["Connections"]) <= 1 for s in seen), seen
        finally:
            for port in dc.masters():
                node_command(HOST, port, "CLUSTER", "SETSLOT", slot, "NODE", dst_id)
        assert c.get(key) == b"moved"       # MOVED followed
        assert wait_for(lambda: {s["Server"] for s in servers(p.port)} == named, 5)
        assert all(int(s["Connections"]) <= 1 for s in servers(p.port))
        c.close()
    finally:
        dc.stop()


def test_seed_not_in_a_cluster_yet_is_passed_over(cluster, proxies):
    """A seed that is a new node not joined yet (no slot in its CLUSTER NODES)
    must not become the proxy's view of the cluster."""
    lone = lone_node()
    try:
        p = proxies(cluster, pool={"Servers": [lone.addrs[0], cluster.addrs[0]]})
        c = client(p.port)
        keys = [ks[0] for ks in keys_per_master(cluster, "lone").values()]
        assert set_everywhere(c, keys)
        assert {s["Server"] for s in servers(p.port)} == set(cluster.addrs)
        c.close()
    finally:
        lone.stop()


def test_seed_host_names(cluster, proxies, tmp_path):
    """Seeds may be host names (checked by -t, looked up when needed); one
    that does not resolve is passed over, and alone gives quick CLUSTERDOWN."""
    conf = tmp_path / "p.conf"
    conf.write_text("Bind = 127.0.0.1:7999\n[ClusterServerPool]\n"
                    "Servers = localhost:7000, redis-0.redis.default.svc.cluster.local:6379, [::1]:7001\n")
    out = subprocess.run([sys.executable, "-m", "geproxy", "-t", "-c", str(conf)], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    assert out.returncode == 0, out.stdout
    conf.write_text("Bind = 127.0.0.1:7999\n[ClusterServerPool]\nServers = localhost\n")
    out = subprocess.run([sys.executable, "-m", "geproxy", "-t", "-c", str(conf)], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    assert out.returncode != 0 and b"Traceback" not in out.stdout, out.stdout

    port = cluster.ports[0]
    p = proxies(cluster, pool={"Servers": ["no-such-node.invalid:%d" % port, "localhost:%d" % port]})
    c = client(p.port)
    assert set_everywhere(c, [ks[0] for ks in keys_per_master(cluster, "names").values()])
    c.close()

    from test_faults import spawn_unready
    q = spawn_unready(cluster, {"Servers": ["no-such-node.invalid:%d" % port], "RefreshInterval": 1})
    try:
        t = time.time()
        try:
            client(q.port).get("names:k")
            raise AssertionError("served with no resolvable seed")
        except redis.exceptions.ClusterDownError:
            pass
        assert time.time() - t < REPLY
        assert wait_for(lambda: "cannot resolve seed no-such-node.invalid" in q.log(), 10), q.log_tail(10)
    finally:
        q.stop()
