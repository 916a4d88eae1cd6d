"""The core data path: pipelines, binary safety, spreading, errors, inline
commands, malformed input, RESP3 clients."""

import os
import random
import time

import pytest
import redis

from conftest import replies
from geproxy.resp import command
from geproxy.slots import key_slot


def test_keys_spread_over_every_master(r, cluster):
    for i in range(300):
        r.set("spread:%d" % i, i)
    counts = [cluster.client(p).dbsize() for p in cluster.masters()]
    assert len(counts) == 3 and all(c > 0 for c in counts)


def test_pipeline_of_10000_over_all_slots_keeps_order(r):
    keys = ["pipe:%d:%d" % (i, random.randrange(1 << 30)) for i in range(10000)]
    assert len({key_slot(k.encode()) for k in keys}) > 5000
    p = r.pipeline(transaction=False)
    for i, k in enumerate(keys):
        p.set(k, i)
    assert p.execute() == [True] * len(keys)
    p = r.pipeline(transaction=False)
    for k in keys:
        p.get(k)
    assert p.execute() == [str(i).encode() for i in range(len(keys))]


def test_binary_safe_keys_and_values(r):
    key = b"bin\x00\r\nkey\xff"
    value = bytes(range(256)) * 4 + b"\r\n\x00"
    assert r.set(key, value)
    assert r.get(key) == value
    big = os.urandom(1 << 20)
    assert r.set(b"big\r\n", big)
    assert r.get(b"big\r\n") == big


def test_crossslot_unknown_and_arity_errors(r):
    with pytest.raises(redis.ResponseError, match="^Keys in request don't hash to the same slot"):
        r.execute_command("SINTER", "a", "b")
    with pytest.raises(redis.ResponseError, match="unknown command 'NOSUCH'"):
        r.execute_command("NOSUCH", "x")
    with pytest.raises(redis.ResponseError, match="wrong number of arguments for 'get' command"):
        r.execute_command("GET")
    with pytest.raises(redis.ResponseError, match="wrong number of arguments for 'object|encoding' command"):
        r.execute_command("OBJECT", "ENCODING")
    with pytest.raises(redis.ResponseError, match="(?i)unknown subcommand 'nope'"):
        r.execute_command("OBJECT", "NOPE", "k")


def test_same_slot_multi_key_is_fine(r):
    r.sadd("{tag}a", 1, 2)
    r.sadd("{tag}b", 2, 3)
    assert r.sinter("{tag}a", "{tag}b") == {b"2"}


def test_denied_commands(r):
    for cmd in (["SHUTDOWN"], ["DEBUG", "SLEEP", "0"], ["CLUSTER", "SETSLOT", "1", "STABLE"],
                ["REPLICAOF", "NO", "ONE"]):
        with pytest.raises(redis.ResponseError):
            r.execute_command(*cmd)
    assert r.ping()


def test_select(r):
    assert r.execute_command("SELECT", 0) is True
    with pytest.raises(redis.ResponseError, match="SELECT is not allowed in cluster mode"):
        r.execute_command("SELECT", 1)
    with pytest.raises(redis.ResponseError, match="not an integer"):
        r.execute_command("SELECT", "x")


def test_client_commands(r):
    assert r.client_setname("app-1")
    assert r.client_getname() == "app-1" or r.client_getname() == b"app-1"
    cid = r.client_id()
    assert isinstance(cid, int) and cid > 0
    info = r.execute_command("CLIENT", "INFO")
    assert b"name=app-1" in info and b"id=%d" % cid in info
    assert b"id=%d" % cid in r.execute_command("CLIENT", "LIST")
    with pytest.raises(redis.ResponseError, match="spaces"):
        r.client_setname("a b")
    assert r.execute_command("CLUSTER", "KEYSLOT", "foo") == 12182


def test_inline_commands(proxy, raw):
    c = raw(proxy.port)
    c.send(b"PING\r\nSET inline:k \"a b\"\r\nGET inline:k\r\nECHO x\n")
    assert c.recv_until(replies(4)) == b"+PONG\r\n+OK\r\n$3\r\na b\r\n$1\r\nx\r\n"


def test_quit_closes_after_reply(proxy, raw):
    c = raw(proxy.port)
    c.send(command("SET", "q:k", "1") + command("QUIT") + command("GET", "q:k"))
    assert c.recv_until(replies(2)) == b"+OK\r\n+OK\r\n"
    assert c.wait_closed()


@pytest.mark.parametrize("garbage,message", [
    (b"*1\r\n$x\r\n", b"invalid bulk length"),
    (b"*-\r\n", b"invalid multibulk length"),
    (b"*1\r\n$-7\r\n", b"invalid bulk length"),
    (b"*1\r\n:1\r\n", b"expected '$', got ':'"),
    (b"*1\r\n$2147483648\r\n", b"invalid bulk length"),
    (b"*1\r\n$600000000\r\n", b"invalid bulk length"),
])
def test_malformed_input_gets_protocol_error_and_close(proxy, raw, r, garbage, message):
    c = raw(proxy.port)
    c.send(command("PING") + garbage)
    got = c.recv_until(replies(2))
    assert got.startswith(b"+PONG\r\n-ERR Protocol error: ")
    assert message in got
    assert c.wait_closed()
    assert r.ping()  # everyone else is still served


def test_random_garbage_never_kills_the_proxy(proxy, raw, r):
    rnd = random.Random(7)
    for _ in range(30):
        c = raw(proxy.port, timeout=2)
        c.send(bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 400))))
        c.close()
    assert r.ping() and r.set("after:garbage", 1)


def test_resp3_client(r3):
    """redis-py 8's default client opens with HELLO 3; replies must be real RESP3."""
    assert r3.ping()
    r3.hset("r3:h", mapping={"a": "1"})
    assert r3.hgetall("r3:h") == {b"a": b"1"}
    r3.sadd("r3:s", "x")
    assert r3.smembers("r3:s") == {b"x"}
    r3.zadd("r3:z", {"m": 1.5})
    assert r3.zscore("r3:z", "m") == 1.5
    assert r3.get("r3:none") is None
    assert r3.execute_command("HELLO", "3")[b"proto"] == 3


def test_resp3_wire_types(proxy, raw):
    c = raw(proxy.port)
    c.send(command("HELLO", "3"))
    hello = c.recv_until(replies(1))
    assert hello.startswith(b"%7\r\n")
    c.send(command("DEL", "w3:h") + command("HSET", "w3:h", "f", "v") + command("HGETALL", "w3:h")
           + command("GET", "w3:none") + command("ZADD", "w3:z", "2.5", "m") + command("ZSCORE", "w3:z", "m"))
    got = c.recv_until(replies(6))
    assert b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n_\r\n" in got
    assert got.endswith(b",2.5\r\n")


def test_hello_errors_and_setname(r):
    with pytest.raises(redis.ResponseError, match="NOPROTO|unsupported protocol"):
        r.execute_command("HELLO", "4")
    reply = r.execute_command("HELLO", "2", "SETNAME", "via-hello")
    assert b"proto" in reply
    assert r.client_getname() in ("via-hello", b"via-hello")


def test_default_redis_py_client_connects(proxy):
    """Whatever redis-py's default protocol is, a plain client works end to end."""
    c = redis.Redis(port=proxy.port)
    assert c.set("default:k", "v") and c.get("default:k") == b"v"
    c.close()


def test_client_timeout_closes_idle_clients(make_proxy, raw):
    p = make_proxy(top={"ClientTimeout": 1})
    idle, busy = raw(p.port), raw(p.port)
    t = time.time()
    for _ in range(4):
        busy.send(command("PING"))
        assert busy.recv_until(replies(1)) == b"+PONG\r\n"
        time.sleep(0.4)
    assert idle.wait_closed(timeout=3)
    assert 0.9 < time.time() - t < 4
    busy.send(command("PING"))
    assert busy.recv_until(replies(1)) == b"+PONG\r\n"


def test_sigterm_stops_promptly(make_proxy):
    p = make_proxy()
    c = redis.Redis(port=p.port)
    assert c.ping()
    t = time.time()
    p.proc.terminate()
    assert p.proc.wait(10) == 0
    assert time.time() - t < 4
