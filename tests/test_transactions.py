"""MULTI / EXEC / DISCARD / WATCH through the proxy: transactions pinned to
one slot, answered as one Redis would (QUEUED, EXEC arrays, EXECABORT,
WatchError), alone, pipelined, and with many clients at once."""

import random
import threading

import pytest
import redis

from clusterhelp import backend_connections, owner_of, wait_for
from conftest import replies
from geproxy.resp import command

CROSS = b"-CROSSSLOT Keys in request don't hash to the same slot\r\n"
EXECABORT = b"-EXECABORT Transaction discarded because of previous errors.\r\n"


def talk(c, *cmds):
    c.send(b"".join(command(*a) for a in cmds))
    return c.recv_until(replies(len(cmds)))


def test_multi_exec_in_one_slot(proxy, raw, r):
    r.delete("{tx}a", "{tx}b")
    c = raw(proxy.port)
    assert talk(c, ["MULTI"], ["SET", "{tx}a", "1"], ["INCR", "{tx}a"], ["RPUSH", "{tx}b", "x", "y"],
                ["MGET", "{tx}a", "{tx}none"], ["PING"], ["EXEC"]) == (
        b"+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n"
        b"*5\r\n+OK\r\n:2\r\n:2\r\n*2\r\n$1\r\n2\r\n$-1\r\n+PONG\r\n")
    assert talk(c, ["MULTI"], ["EXEC"]) == b"+OK\r\n*0\r\n"
    assert r.get("{tx}a") == b"2"


def test_discard_and_misplaced_commands(proxy, raw, r):
    r.set("{tx}d", "before")
    c = raw(proxy.port)
    assert talk(c, ["MULTI"], ["SET", "{tx}d", "after"], ["DISCARD"], ["GET", "{tx}d"]) == (
        b"+OK\r\n+QUEUED\r\n+OK\r\n$6\r\nbefore\r\n")
    assert talk(c, ["EXEC"], ["DISCARD"]) == b"-ERR EXEC without MULTI\r\n-ERR DISCARD without MULTI\r\n"
    # nested MULTI is refused but does not doom the transaction, as in Redis
    assert talk(c, ["MULTI"], ["MULTI"], ["SET", "{tx}d", "n"], ["EXEC"]) == (
        b"+OK\r\n-ERR MULTI calls can not be nested\r\n+QUEUED\r\n*1\r\n+OK\r\n")
    assert talk(c, ["MULTI"], ["WATCH", "{tx}d"], ["EXEC"]) == (
        b"+OK\r\n-ERR WATCH inside MULTI is not allowed\r\n*0\r\n")


def test_same_sequences_directly_on_redis(cluster, raw):
    """The references for the two tests above: the node owning {tx} says the same."""
    c = raw(owner_of(cluster, "{tx}d"))
    assert talk(c, ["MULTI"], ["MULTI"], ["SET", "{tx}d", "n"], ["EXEC"]) == (
        b"+OK\r\n-ERR MULTI calls can not be nested\r\n+QUEUED\r\n*1\r\n+OK\r\n")
    assert talk(c, ["MULTI"], ["WATCH", "{tx}d"], ["EXEC"]) == (
        b"+OK\r\n-ERR WATCH inside MULTI is not allowed\r\n*0\r\n")


def test_crossslot_or_unknown_command_aborts(proxy, raw, r):
    r.delete("{tx}c", "tx:other")
    c = raw(proxy.port)
    assert talk(c, ["MULTI"], ["SET", "{tx}c", "1"], ["SET", "tx:other", "1"], ["EXEC"]) == (
        b"+OK\r\n+QUEUED\r\n" + CROSS + EXECABORT)
    got = talk(c, ["MULTI"], ["SET", "{tx}c", "1"], ["NOSUCHCMD", "x"], ["EXEC"])
    assert got.startswith(b"+OK\r\n+QUEUED\r\n-ERR unknown command 'NOSUCHCMD'") and got.endswith(EXECABORT)
    got = talk(c, ["MULTI"], ["SET", "{tx}c", "1"], ["GET"], ["EXEC"])
    assert got.startswith(b"+OK\r\n+QUEUED\r\n-ERR wrong number of arguments for 'get' command\r\n")
    assert got.endswith(EXECABORT)
    assert r.exists("{tx}c", "tx:other") == 0
    # the connection is usable afterwards, with a fresh slot
    assert talk(c, ["MULTI"], ["SET", "tx:other", "2"], ["EXEC"]) == b"+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n"


def test_runtime_error_inside_exec_is_per_command(proxy, raw, r):
    r.delete("{tx}s", "{tx}l")
    r.set("{tx}s", "str")
    c = raw(proxy.port)
    got = talk(c, ["MULTI"], ["LPUSH", "{tx}s", "x"], ["RPUSH", "{tx}l", "ok"], ["EXEC"])
    assert got.startswith(b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n-WRONGTYPE")
    assert got.endswith(b":1\r\n")
    assert r.lrange("{tx}l", 0, -1) == [b"ok"]


def test_blocking_command_inside_multi_does_not_block(proxy, raw, r):
    r.delete("{tx}q")
    c = raw(proxy.port)
    assert talk(c, ["MULTI"], ["BLPOP", "{tx}q", "0"], ["RPUSH", "{tx}q", "v"], ["BLPOP", "{tx}q", "0"],
                ["EXEC"]) == b"+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n*-1\r\n:1\r\n*2\r\n$5\r\n{tx}q\r\n$1\r\nv\r\n"


@pytest.mark.parametrize("proto,nil", [("2", b"*-1\r\n"), ("3", b"_\r\n")])
def test_watch_conflict_raw(proxy, raw, r, proto, nil):
    r.set("{tx}w", "0")
    a = raw(proxy.port)
    talk(a, ["HELLO", proto])
    assert talk(a, ["WATCH", "{tx}w"]) == b"+OK\r\n"
    r.set("{tx}w", "changed by B")
    assert talk(a, ["MULTI"], ["SET", "{tx}w", "A"], ["EXEC"]) == b"+OK\r\n+QUEUED\r\n" + nil
    assert r.get("{tx}w") == b"changed by B"
    # no conflict: EXEC runs; UNWATCH forgets the watch
    assert talk(a, ["WATCH", "{tx}w"], ["MULTI"], ["SET", "{tx}w", "A"], ["EXEC"]) == (
        b"+OK\r\n+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n")
    assert talk(a, ["WATCH", "{tx}w"], ["UNWATCH"]) == b"+OK\r\n+OK\r\n"
    r.set("{tx}w", "B again")
    assert talk(a, ["MULTI"], ["SET", "{tx}w", "A2"], ["EXEC"]) == b"+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n"
    # DISCARD unwatches too
    talk(a, ["WATCH", "{tx}w"], ["MULTI"], ["DISCARD"])
    r.set("{tx}w", "B3")
    assert talk(a, ["MULTI"], ["GET", "{tx}w"], ["EXEC"]).endswith(b"$2\r\nB3\r\n")


def test_watch_then_other_slot_is_crossslot(proxy, raw, r):
    c = raw(proxy.port)
    assert talk(c, ["WATCH", "{tx}w1", "tx:w2"]) == CROSS
    assert talk(c, ["WATCH", "{tx}w1"], ["MULTI"], ["SET", "tx:w2", "1"], ["EXEC"]) == (
        b"+OK\r\n+OK\r\n" + CROSS + EXECABORT)
    assert talk(c, ["WATCH", "{tx}w1"], ["WATCH", "tx:w2"]) == b"+OK\r\n" + CROSS


@pytest.mark.parametrize("client", ["r", "r3"])
def test_redis_py_transactions_and_watch_error(request, proxy, client):
    c = request.getfixturevalue(client)
    other = redis.Redis(port=proxy.port, protocol=2)
    c.delete("{tx}p1", "{tx}p2")
    with c.pipeline(transaction=True) as p:
        p.set("{tx}p1", 1).incrby("{tx}p1", 5).rpush("{tx}p2", "a", "b").lrange("{tx}p2", 0, -1)
        assert p.execute() == [True, 6, 2, [b"a", b"b"]]
    with c.pipeline(transaction=True) as p:
        p.watch("{tx}p1")
        assert p.get("{tx}p1") == b"6"
        other.set("{tx}p1", 100)
        p.multi()
        p.set("{tx}p1", 7)
        with pytest.raises(redis.WatchError):
            p.execute()
    assert c.get("{tx}p1") == b"100"

    def incr(pipe):
        v = int(pipe.get("{tx}p1"))
        pipe.multi()
        pipe.set("{tx}p1", v + 1)
    assert c.transaction(incr, "{tx}p1") == [True]
    assert c.get("{tx}p1") == b"101"
    with pytest.raises(redis.ResponseError, match="same slot|CROSSSLOT"):
        with c.pipeline(transaction=True) as p:
            p.set("{tx}p1", 1).set("tx:elsewhere", 2).execute()
    other.close()


def test_disconnect_with_watch_releases_connection(make_proxy, raw):
    p = make_proxy()
    r = redis.Redis(port=p.port)
    r.dbsize()
    base = backend_connections(p.port)
    c = raw(p.port)
    assert talk(c, ["WATCH", "{tx}gone"]) == b"+OK\r\n"
    assert backend_connections(p.port) == base + 1
    c.close()
    assert wait_for(lambda: backend_connections(p.port) == base, 5)
    r.close()


def test_pipelined_write_then_transaction_keeps_order(proxy, raw, r):
    """One Redis runs a connection's commands in order: the SET before MULTI
    is seen inside the transaction, and does not trip the WATCH after it."""
    r.delete("{tx}o")
    c = raw(proxy.port)
    talk(c, ["MULTI"], ["PING"], ["EXEC"])  # an idle private connection exists now
    assert talk(c, ["SET", "{tx}o", "1"], ["MULTI"], ["INCR", "{tx}o"], ["EXEC"], ["GET", "{tx}o"]) == (
        b"+OK\r\n+OK\r\n+QUEUED\r\n*1\r\n:2\r\n$1\r\n2\r\n")


def test_pipelined_write_then_watch_keeps_order(proxy, raw, r):
    """The client's own SET sent before its WATCH must not make EXEC fail."""
    c = raw(proxy.port)
    talk(c, ["MULTI"], ["PING"], ["EXEC"])  # an idle private connection exists now
    assert talk(c, ["SET", "{tx}o2", "5"], ["WATCH", "{tx}o2"], ["MULTI"], ["INCR", "{tx}o2"], ["EXEC"]) == (
        b"+OK\r\n+OK\r\n+OK\r\n+QUEUED\r\n*1\r\n:6\r\n")


def test_many_clients_transactions_and_plain_commands(proxy):
    """20 clients x 50 operations: WATCH-retry increments of one shared
    counter, own-slot transactions, plain commands; nothing is lost or mixed."""
    shared = "{tx:many}shared"
    setup = redis.Redis(port=proxy.port)
    setup.set(shared, 0)
    done = [0] * 20
    errors = []

    def worker(n):
        try:
            rnd = random.Random(n)
            c = redis.Redis(port=proxy.port, protocol=2 + n % 2)
            mine = "{tx:c%d}" % n
            c.delete(mine + "n", mine + "l")
            for i in range(50):
                op = rnd.randrange(3)
                if op == 0:
                    def incr(pipe):
                        v = int(pipe.get(shared))
                        pipe.multi()
                        pipe.set(shared, v + 1)
                    c.transaction(incr, shared)
                    done[n] += 1
                elif op == 1:
                    with c.pipeline(transaction=True) as p:
                        p.incr(mine + "n").rpush(mine + "l", i).llen(mine + "l")
                        n_, _, ln = p.execute()
                    assert n_ == ln
                else:
                    c.set("tx:plain:%d:%d" % (n, i), i)
                    assert c.get("tx:plain:%d:%d" % (n, i)) == str(i).encode()
            assert int(c.get(mine + "n") or 0) == c.llen(mine + "l")
            c.close()
        except Exception as e:  # reported below
            errors.append(repr(e))
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors[:3]
    assert int(setup.get(shared)) == sum(done)
    setup.close()


def test_watch_then_hello3_exec_answers_in_resp3(proxy, raw, r, cluster):
    """HELLO 3 between WATCH and EXEC: as on one Redis, EXEC's reply is RESP3."""
    r.delete("{tx}h")
    r.hset("{tx}h", "f", "v")
    for who, port in (("node", owner_of(cluster, "{tx}h")), ("proxy", proxy.port)):
        c = raw(port)
        assert talk(c, ["WATCH", "{tx}h"]) == b"+OK\r\n"
        talk(c, ["HELLO", "3"])
        assert (who, talk(c, ["MULTI"], ["HGETALL", "{tx}h"], ["EXEC"])) == (
            who, b"+OK\r\n+QUEUED\r\n*1\r\n%1\r\n$1\r\nf\r\n$1\r\nv\r\n")
