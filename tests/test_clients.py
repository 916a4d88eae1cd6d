"""Client libraries no one here wrote, driving geproxy as their applications
would: redis-py (sync and asyncio, RESP2 and RESP3), and from npm ioredis
(default options: HELLO 3) and node-redis (RESP2 and RESP3).  Then clients
killed with SIGKILL in the middle of their work: the proxy's greenlets,
client and backend connections return to where they were."""
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import redis
import redis.asyncio

from conftest import HOST, start_proxy, wait_for
from opshelp import fields, info

JS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "js")
NODE = shutil.which("node")
HAVE_JS = NODE and os.path.isdir(os.path.join(JS, "node_modules", "ioredis")) \
    and os.path.isdir(os.path.join(JS, "node_modules", "redis"))


# -- redis-py, sync --

@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def client(request, proxy):
    c = redis.Redis(host=HOST, port=proxy.port, protocol=request.param, socket_timeout=30)
    yield c
    c.close()


def test_redis_py_connect_and_setinfo(client):
    me = client.client_info()
    assert me["lib-name"].startswith("redis-py") and me["lib-ver"]
    assert int(me["resp"]) == client.connection_pool.connection_kwargs["protocol"]


def test_redis_py_pipeline_of_1000(client):
    p = client.pipeline(transaction=False)
    for i in range(1000):
        p.set("cl:p:%d" % i, i)
        p.get("cl:p:%d" % i)
    out = p.execute()
    assert out[1::2] == [b"%d" % i for i in range(1000)]


def test_redis_py_transaction_in_one_slot(client):
    p = client.pipeline(transaction=True)
    p.set("{cl:t}a", 1).incr("{cl:t}a").get("{cl:t}a")
    assert p.execute() == [True, 2, b"2"]


def test_redis_py_mget_mset_across_slots(client):
    data = {"cl:mk:%d" % i: "v%d" % i for i in range(100)}
    assert client.mset(data)
    assert client.mget(list(data) + ["cl:missing"]) == [v.encode() for v in data.values()] + [None]
    assert client.delete(*data) == 100


def test_redis_py_scan_iter_sees_every_key_once(client):
    keys = ["cl:scan:%d" % i for i in range(500)]
    client.mset({k: 1 for k in keys})
    seen = [k.decode() for k in client.scan_iter(match="cl:scan:*", count=50)]
    assert sorted(seen) == sorted(keys)
    client.delete(*keys)


def test_redis_py_lua(client):
    script = client.register_script("redis.call('set', KEYS[1], ARGV[1]); return {redis.call('get', KEYS[1]), 7}")
    assert script(keys=["{cl:lua}k"], args=["hi"]) == [b"hi", 7]  # EVALSHA, NOSCRIPT, EVAL


def test_redis_py_pubsub(client):
    ps = client.pubsub()
    ps.subscribe("cl:chan")
    assert wait_for(lambda: ps.get_message(timeout=0.2), 3)["type"] == "subscribe"
    assert client.publish("cl:chan", "hello") >= 0
    msg = wait_for(lambda: ps.get_message(timeout=0.2), 5)
    assert msg["type"] == "message" and msg["data"] == b"hello"
    ps.close()


def test_redis_py_big_replies(client):
    value = b"v" * 1000
    client.delete("cl:big", "cl:bighash")
    client.rpush("cl:big", *[value] * 1200)
    client.hset("cl:bighash", mapping={"f%d" % i: value for i in range(2000)})
    assert client.lrange("cl:big", 0, -1) == [value] * 1200
    assert len(client.hgetall("cl:bighash")) == 2000
    client.delete("cl:big", "cl:bighash")


def test_redis_py_reconnects_after_the_proxy_restarts(cluster):
    p = start_proxy(cluster)
    try:
        c = redis.Redis(host=HOST, port=p.port, protocol=3, socket_timeout=5,
                        retry_on_error=[redis.ConnectionError], retry=redis.retry.Retry(redis.backoff.ConstantBackoff(0.2), 20))
        assert c.set("cl:restart", "before")
        p.stop()
        p = start_proxy(cluster, port=p.port)
        assert c.get("cl:restart") == b"before"
        c.close()
    finally:
        p.stop()


# -- redis-py, asyncio --

@pytest.mark.parametrize("proto", [2, 3])
def test_redis_py_asyncio(proxy, proto):
    async def run():
        c = redis.asyncio.Redis(host=HOST, port=proxy.port, protocol=proto)
        try:
            async with c.pipeline(transaction=False) as p:
                for i in range(1000):
                    p.set("cl:a:%d" % i, i)
                out = await p.execute()
            assert out == [True] * 1000
            assert await c.mget(["cl:a:%d" % i for i in range(0, 1000, 100)]) == [b"%d" % i for i in range(0, 1000, 100)]
            async with c.pipeline(transaction=True) as p:
                p.incr("{cl:a}n").incr("{cl:a}n")
                first, second = await p.execute()
            assert second == first + 1
            assert len([k async for k in c.scan_iter(match="cl:a:*", count=100)]) >= 1000
            # many concurrent commands on one client: each gets its own reply
            got = await asyncio.gather(*[c.get("cl:a:%d" % i) for i in range(50)])
            assert got == [b"%d" % i for i in range(50)]
            await c.delete(*["cl:a:%d" % i for i in range(1000)], "{cl:a}n")
        finally:
            await c.aclose()
    asyncio.run(run())


# -- Node clients --

def run_js(lib, port, resp, *scenarios, timeout=120):
    out = subprocess.run([NODE, os.path.join(JS, "client_check.js"), lib, str(port), str(resp), *scenarios],
                         capture_output=True, text=True, timeout=timeout, cwd=JS)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    assert lines, "no result from %s: %s %s" % (lib, out.stdout[-500:], out.stderr[-1500:])
    return json.loads(lines[-1])


@pytest.mark.skipif(not HAVE_JS, reason="node or the npm clients are missing (scripts/test.sh installs them when node exists)")
@pytest.mark.parametrize("lib,resp", [("ioredis", 3), ("ioredis", 2), ("node-redis", 2), ("node-redis", 3)])
def test_node_client(proxy, lib, resp):
    results = run_js(lib, proxy.port, resp)
    assert set(results) == {"setinfo", "pipeline", "multi", "mget_mset", "scan", "lua", "pubsub", "big"}, results
    failed = {k: v for k, v in results.items() if v != "ok"}
    assert not failed, failed


# -- clients killed mid-work --

def counters(port):
    d = fields(info(port, "SystemResource") + info(port, "Stats"))
    return {k: int(d[k]) for k in ("Greenlets", "BackendConnections", "ClientConnections")}


WORK = {
    "pipeline": "p = r.pipeline(transaction=False)\n"
                "for i in range(50000): p.set('cl:kill:%d' % (i % 100), i)\n"
                "r.ping(); print('go', flush=True); p.execute()\n",
    "blocking": "print('go', flush=True); r.blpop('cl:kill:never', 0)\n",
    "subscribed": "ps = r.pubsub(); ps.subscribe('cl:kill:chan'); ps.psubscribe('cl:kill:*')\n"
                  "ps.get_message(timeout=1); print('go', flush=True)\n"
                  "while True: ps.get_message(timeout=1)\n",
    "big_reply": "r.delete('cl:kill:big'); r.rpush('cl:kill:big', *[b'x' * 10000] * 2000)\n"
                 "print('go', flush=True)\n"
                 "while True: r.lrange('cl:kill:big', 0, -1)\n",
    "transaction": "r.watch('{cl:kill}w'); r.execute_command('MULTI'); r.execute_command('SET', '{cl:kill}w', 1)\n"
                   "print('go', flush=True); import time; time.sleep(60)\n",
}


@pytest.mark.parametrize("work", sorted(WORK))
def test_kill_9_client_mid_work_leaves_nothing_behind(make_proxy, work):
    p = make_proxy()
    for proto in (2, 3):  # node links of both protocols to every master exist before the baseline
        with redis.Redis(host=HOST, port=p.port, protocol=proto) as warm:
            warm.mset({"cl:kill:%d" % i: 1 for i in range(100)})
    r = redis.Redis(host=HOST, port=p.port)
    r.ping()
    time.sleep(0.3)
    base = counters(p.port)

    def settled():
        now = counters(p.port)
        return (now["ClientConnections"] == base["ClientConnections"]
                and now["BackendConnections"] == base["BackendConnections"]
                and now["Greenlets"] <= base["Greenlets"] + 2)
    for proto in (2, 3):
        code = "import redis\nr = redis.Redis(host=%r, port=%d, protocol=%d)\n" % (HOST, p.port, proto) + WORK[work]
        child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout.readline().strip() == "go"
            # connected (a busy machine may take a while), then killed mid-work
            assert wait_for(lambda: counters(p.port)["ClientConnections"] > base["ClientConnections"], 10)
            time.sleep(0.3)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(10)
        assert wait_for(settled, 10), "after kill -9 (%s, RESP%d): %s, before: %s" % (
            work, proto, counters(p.port), base)
    assert r.ping()
    r.delete("cl:kill:big")
    r.close()
