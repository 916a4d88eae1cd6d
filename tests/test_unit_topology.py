"""topology.py (what CLUSTER NODES and CLUSTER SLOTS say, host names) and
seeds.py (seed names looked up at every use), without a cluster."""

import socket
import time

import gevent

from geproxy.seeds import Seeds
from geproxy.topology import one_per_address, parse_cluster_nodes, prefers_names

NAMED = """\
aaa 10.0.0.1:6379@16379,redis-0.redis myself,master - 0 0 1 connected 0-8191
bbb 10.0.0.2:6379@16379,redis-1.redis master - 0 0 2 connected 8192-16383
ccc 10.0.0.3:6379@16379 slave aaa 0 0 1 connected
ddd 10.0.0.4:6379@16379,,shard-id=abc slave bbb 0 0 2 connected
"""


def test_cluster_nodes_with_host_names():
    nodes = {n.node_id: n for n in parse_cluster_nodes(NAMED)}
    assert nodes["aaa"].addr == "10.0.0.1:6379" and nodes["aaa"].hostname == "redis-0.redis"
    assert nodes["aaa"].name_addr == "redis-0.redis:6379"
    assert nodes["aaa"].spellings() == ["10.0.0.1:6379", "redis-0.redis:6379"]
    assert nodes["aaa"].endpoint(True) == "redis-0.redis:6379" and nodes["aaa"].endpoint(False) == "10.0.0.1:6379"
    assert nodes["ccc"].hostname == "" and nodes["ccc"].endpoint(True) == "10.0.0.3:6379"
    assert nodes["ddd"].hostname == ""          # an empty name, then key=value fields: no name
    assert nodes["bbb"].slots == [(8192, 16383)] and nodes["ddd"].master_id == "bbb"


def test_cluster_slots_says_whether_names_are_preferred():
    nodes = parse_cluster_nodes(NAMED)
    by_name = [[0, 8191, [b"redis-0.redis", 6379, b"aaa", [b"ip", b"10.0.0.1"]]]]
    by_ip = [[0, 8191, [b"10.0.0.1", 6379, b"aaa", [b"hostname", b"redis-0.redis"]]]]
    assert prefers_names(by_name, nodes) is True
    assert prefers_names(by_ip, nodes) is False
    assert prefers_names([], nodes) is False
    assert prefers_names([[0, 1, b"junk"], b"junk", [0, 1, [None]]], nodes) is False


def test_one_node_per_address_the_healthy_one_wins():
    """A pod back empty: its old node id stays, flagged fail, on the same address."""
    text = ("old 10.0.0.1:6379@16379,redis-0 master,fail - 0 0 1 connected 0-100\n"
            "new 10.0.0.1:6379@16379,redis-0 myself,master - 0 0 3 connected\n"
            "two 10.0.0.2:6379@16379,redis-1 master - 0 0 2 connected 101-16383\n")
    kept = one_per_address(parse_cluster_nodes(text))
    assert [n.node_id for n in kept] == ["new", "two"]     # the cluster's order kept


def test_one_node_per_name_only_where_the_cluster_spells_by_name():
    """A pod back empty on another IP keeps its name: with names preferred
    the old node (flagged fail) gives way; where a name is only a label (it
    may be the same for every node) the nodes are told apart by address."""
    text = ("old 10.0.0.1:6379@16379,redis-0 master,fail - 0 0 1 connected 0-100\n"
            "new 10.0.0.9:6379@16379,redis-0 master - 0 0 3 connected\n"
            "two 10.0.0.2:6379@16379,redis-1 master - 0 0 2 connected 101-16383\n")
    nodes = parse_cluster_nodes(text)
    assert [n.node_id for n in one_per_address(nodes, names=True)] == ["new", "two"]
    assert [n.node_id for n in one_per_address(nodes, names=False)] == ["old", "new", "two"]
    assert nodes[0].spellings(False) == ["10.0.0.1:6379"]


def test_lone_node_address_from_where_it_was_asked():
    nodes = parse_cluster_nodes("aaa :7000@17000 myself,master - 0 0 0 connected\n", seen_from="10.1.1.1:7000")
    assert nodes[0].addr == "10.1.1.1:7000" and nodes[0].slots == []


def test_seeds_are_looked_up_at_every_walk_every_address_tried():
    answers = [["10.0.0.1", "10.0.0.2"], ["10.0.0.3"]]
    asked = []

    def resolver(host, port):
        asked.append(host)
        return answers[len(asked) - 1]
    seeds = Seeds(["redis.svc:6379", "10.9.9.9:7000", "[::1]:7001"], resolver=resolver)
    first = list(seeds.endpoints())
    assert sorted(first[:2]) == [("10.0.0.1", 6379), ("10.0.0.2", 6379)]
    assert first[2:] == [("10.9.9.9", 7000), ("::1", 7001)]
    assert list(seeds.endpoints())[0] == ("10.0.0.3", 6379)       # the name's new address
    assert asked == ["redis.svc", "redis.svc"]                      # literal addresses are not looked up
    assert seeds.spellings() == {"redis.svc:6379", "10.9.9.9:7000", "::1:7001"}


def test_seed_names_are_looked_up_only_when_reached():
    asked = []
    seeds = Seeds(["a.svc:1", "b.svc:2"], resolver=lambda h, p: asked.append(h) or ["10.0.0.%d" % p])
    walk = seeds.endpoints()
    assert next(walk) == ("10.0.0.1", 1) and asked == ["a.svc"]


def test_a_seed_that_does_not_resolve_is_passed_over_and_said():
    def resolver(host, port):
        if host == "gone.svc":
            raise socket.gaierror(-2, "Name or service not known")
        return ["10.0.0.1"]
    seeds = Seeds(["gone.svc:6379", "here.svc:6379"], resolver=resolver)
    assert list(seeds.endpoints()) == [("10.0.0.1", 6379)]
    assert seeds.errors == ["cannot resolve seed gone.svc: Name or service not known"]


def test_a_resolver_that_hangs_is_given_up():
    seeds = Seeds(["slow.svc:6379"], timeout=0.2, resolver=lambda h, p: gevent.sleep(30) or ["10.0.0.1"])
    t = time.monotonic()
    assert list(seeds.endpoints()) == []
    assert time.monotonic() - t < 5
    assert "no answer within" in seeds.errors[0]


def test_real_names_resolve():
    assert ("127.0.0.1", 7000) in list(Seeds(["localhost:7000"]).endpoints())


class Cfg:
    Servers = ["redis.svc:6379"]
    ServerTimeout = 1
    RefreshInterval = 1
    User = Password = ""
    MasterReadPriority, StaticSlaveReadPriority, DynamicSlaveReadPriority = 50, 0, 0
    ServerFailureLimit, ServerRetryTimeout = 3, 1


def named(*rows):
    return parse_cluster_nodes("".join(
        "%s 10.0.0.%d:6379@16379,redis-%d %s connected %s\n" % (nid, i, i, rest, slots) for nid, i, rest, slots in rows))


def latency():
    """Monitors as the proxy makes them, one measuring every command."""
    from types import SimpleNamespace
    from geproxy.latency import LatencyMonitors
    return LatencyMonitors({"all": SimpleNamespace(Commands=["all"], TimeSpan=[100, 1000])})


def test_pool_one_server_per_node_by_any_spelling_a_new_id_a_new_server():
    from geproxy.readpolicy import DataCenters
    from geproxy.serverpool import ClusterServerPool
    pool = ClusterServerPool(Cfg, latency(), DataCenters("", {}))
    nodes = named(("aaa", 1, "master - 0 0 1", "0-8191"), ("bbb", 2, "master - 0 0 2", "8192-16383"),
                  ("ccc", 3, "slave aaa 0 0 1", ""))
    pool._apply(one_per_address(nodes, True), True)
    assert sorted(pool.servers) == ["redis-1:6379", "redis-2:6379", "redis-3:6379"]    # the spelling dialled
    first = pool.server("redis-1:6379")
    assert pool.server("10.0.0.1:6379") is first and pool.slots[0] is first and len(pool.servers) == 3
    pool.moved(9000, "redis-4:6379")            # a node the map does not know yet
    newcomer = pool.server("redis-4:6379")
    assert pool.slots[9000] is newcomer and newcomer.node_id == ""
    nodes = named(("aaa", 1, "master - 0 0 1", "0-8191"), ("bbb", 2, "master - 0 0 2", "8192-8999"),
                  ("ddd", 4, "master - 0 0 3", "9000-16383"), ("eee", 3, "slave aaa 0 0 1", ""))
    pool._apply(one_per_address(nodes, True), True)
    assert pool.server("redis-4:6379") is newcomer and newcomer.node_id == "ddd"       # adopted
    assert pool.server("redis-1:6379") is first
    replaced = pool.server("10.0.0.3:6379")
    assert replaced.node_id == "eee" and replaced.role == "slave"
    assert sorted(pool.servers) == ["redis-1:6379", "redis-2:6379", "redis-3:6379", "redis-4:6379"]
    pool.latency.record("redis-1:6379", "get", time.perf_counter())
    pool._apply(one_per_address(nodes, False), False)     # names become labels: reached by IP again
    assert sorted(pool.servers) == ["10.0.0.%d:6379" % i for i in (1, 2, 3, 4)] and not pool.aliases
    monitor = pool.latency.get("all")
    assert "redis-1:6379" not in monitor.servers and monitor.total.counts != [0, 0, 0]   # its row gone, not its count
    by_ip = pool.server("10.0.0.1:6379")
    assert by_ip is not first and by_ip.node_id == "aaa" and pool.slots[0] is by_ip


def test_pool_new_node_id_on_a_known_address_is_a_new_server():
    from geproxy.readpolicy import DataCenters
    from geproxy.serverpool import ClusterServerPool
    pool = ClusterServerPool(Cfg, latency(), DataCenters("", {}))
    pool._apply(named(("aaa", 1, "master - 0 0 1", "0-16383")), False)
    old = pool.server("10.0.0.1:6379")
    old.fail_until = time.monotonic() + 60          # what the proxy knew of the old node
    pool._apply(named(("zzz", 1, "master - 0 0 1", "0-16383")), False)
    new = pool.server("10.0.0.1:6379")
    assert new is not old and new.node_id == "zzz" and not new.is_failed()
    assert list(pool.servers.values()) == [new] and pool.slots[16383] is new
