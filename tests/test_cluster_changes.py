"""Slots moving under the proxy (MOVED, ASK) and nodes failing (ServerFailureLimit,
ServerRetryTimeout).  Each test uses its own proxy so its slot map is known."""

import os
import signal
import time

import pytest
import redis

from conftest import RawClient, replies
from geproxy.resp import command
from geproxy.slots import key_slot


def key_on(cluster, port, prefix):
    """A key whose slot the master at `port` owns."""
    c = cluster.client(port)
    for i in range(100000):
        k = "%s:%d" % (prefix, i)
        if c.execute_command("CLUSTER", "COUNTKEYSINSLOT", key_slot(k.encode())) == 0:
            try:
                c.execute_command("GET", k)
                return k
            except redis.ResponseError:
                continue
    raise AssertionError("no key found")


def errorstat(client, name):
    return client.info("errorstats").get("errorstat_%s" % name, {}).get("count", 0)


def proxy_info(port, section):
    c = RawClient(port)
    c.send(command("INFO", section))
    text = c.recv_until(replies(1)).decode()
    c.close()
    return text


def node_id(cluster, port):
    return cluster.client(port).execute_command("CLUSTER", "MYID").decode()


def set_slot_everywhere(cluster, slot, owner_port):
    owner = node_id(cluster, owner_port)
    for p in cluster.masters():
        cluster.client(p).execute_command("CLUSTER", "SETSLOT", slot, "NODE", owner)


def start_migration(cluster, slot, src, dst):
    cluster.client(dst).execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", node_id(cluster, src))
    cluster.client(src).execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", node_id(cluster, dst))


def finish_migration(cluster, slot, src, dst):
    a = cluster.client(src)
    keys = a.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000)
    if keys:
        a.execute_command("MIGRATE", "127.0.0.1", dst, "", 0, 5000, "REPLACE", "KEYS", *keys)
    set_slot_everywhere(cluster, slot, dst)


def move_slot(cluster, slot, src, dst):
    start_migration(cluster, slot, src, dst)
    finish_migration(cluster, slot, src, dst)


@pytest.fixture
def two_masters(cluster):
    src, dst = cluster.masters()[:2]
    return src, dst


def test_moved_is_followed_and_the_map_updated(cluster, make_proxy, two_masters):
    src, dst = two_masters
    p = make_proxy(pool={"RefreshInterval": 60})
    c = redis.Redis(port=p.port)
    key = key_on(cluster, src, "moved")
    slot = key_slot(key.encode())
    c.set(key, "before")
    a, b = cluster.client(src), cluster.client(dst)
    move_slot(cluster, slot, src, dst)
    try:
        moved_before = errorstat(a, "MOVED")
        assert c.get(key) == b"before"           # proxy still believed src: MOVED, followed
        assert errorstat(a, "MOVED") == moved_before + 1
        assert c.set(key, "after") and c.get(key) == b"after"
        assert errorstat(a, "MOVED") == moved_before + 1  # map updated: no second MOVED
        assert b.get(key) == b"after"
    finally:
        move_slot(cluster, slot, dst, src)


def test_ask_during_migration(cluster, make_proxy, two_masters):
    src, dst = two_masters
    p = make_proxy(pool={"RefreshInterval": 60})
    c = redis.Redis(port=p.port)
    moved_key = key_on(cluster, src, "ask")
    slot = key_slot(moved_key.encode())
    stay_key = "{%s}stay" % moved_key
    c.set(moved_key, "m")
    c.set(stay_key, "s")
    a, b = cluster.client(src), cluster.client(dst)
    start_migration(cluster, slot, src, dst)
    try:
        a.execute_command("MIGRATE", "127.0.0.1", dst, "", 0, 5000, "KEYS", moved_key)
        ask_before = errorstat(a, "ASK")
        assert c.get(moved_key) == b"m"          # on dst now: ASK, then ASKING + GET there
        assert c.get(stay_key) == b"s"           # still on src: served there
        assert errorstat(a, "ASK") == ask_before + 1
        new_key = "{%s}new" % moved_key
        assert c.set(new_key, "n")               # new keys of a migrating slot go to dst
        assert b.execute_command("ASKING") and b.get(new_key) == b"n"
        assert c.get(moved_key) == b"m"          # ASK leaves the map alone: ASK again
        assert errorstat(a, "ASK") == ask_before + 3
    finally:
        finish_migration(cluster, slot, src, dst)
        move_slot(cluster, slot, dst, src)


def test_failed_node_is_marked_then_retried(cluster, make_proxy):
    p = make_proxy(pool={"ServerTimeout": "200ms", "ServerFailureLimit": 2, "ServerRetryTimeout": 1})
    c = redis.Redis(port=p.port, socket_timeout=5)
    victim, other = cluster.masters()[:2]
    vkey, okey = key_on(cluster, victim, "fail"), key_on(cluster, other, "ok")
    c.set(vkey, 1)
    pid = cluster.procs[victim].pid
    os.kill(pid, signal.SIGSTOP)
    try:
        for _ in range(2):  # each waits ServerTimeout, then fails
            t = time.time()
            with pytest.raises(redis.ResponseError, match="failed"):
                c.get(vkey)
            assert time.time() - t < 1.0
        t = time.time()
        with pytest.raises(redis.ResponseError, match="marked failed"):
            c.get(vkey)
        assert time.time() - t < 0.3            # answered at once, not after ServerTimeout (1 s)
        assert c.set(okey, 2) and c.get(okey) == b"2"  # other slots are unaffected
        info = proxy_info(p.port, "servers")
        block = info.split("Server:127.0.0.1:%d" % victim)[1].split("\r\n\r\n")[0]
        assert "CurrentIsFail:1" in block
    finally:
        os.kill(pid, signal.SIGCONT)
    time.sleep(1.2)                              # ServerRetryTimeout passes
    assert c.get(vkey) == b"1"
    assert "CurrentIsFail:1" not in proxy_info(p.port, "servers")


def test_starts_with_some_seeds_unreachable(cluster, make_proxy):
    from conftest import free_port
    p = make_proxy(pool={"Servers": ["127.0.0.1:%d" % free_port(), cluster.addrs[-1]]})
    c = redis.Redis(port=p.port)
    assert c.set("seeds:k", "v") and c.get("seeds:k") == b"v"
