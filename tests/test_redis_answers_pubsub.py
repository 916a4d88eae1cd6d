"""Pub/sub answers as one Redis gives them: the counts in every (un)subscribe
confirmation are the client's own totals, whichever nodes its channels live
on (Redis 7.0: SSUBSCRIBE counts shard channels, SUBSCRIBE and PSUBSCRIBE
channels and patterns), and PUBSUB NUMPAT / NUMSUB / CHANNELS / SHARDNUMSUB /
SHARDCHANNELS count what clients subscribed, once, not the copies the proxy
holds on several masters for keyspace notifications."""

import pytest
import redis

from answerhelp import exchange, parsed, standalone  # noqa: F401 (fixture)
from clusterhelp import keys_per_master
from conftest import HOST, RawClient, replies
from geproxy.resp import command


def shard_channels(cluster):
    """Two shard channels on each of two masters, and one on the third (distinct slots)."""
    per = list(keys_per_master(cluster, "sch", 2).values())
    return per[0] + per[1], per[2][0]


def steps(a, b, c, d, e):
    """(replies, command...) of one client's subscription life: a, b on one
    master, c, d on another, e on the third, mixed with channels and patterns."""
    return [
        (1, "SSUBSCRIBE", a), (1, "SSUBSCRIBE", c), (2, "SSUBSCRIBE", e, e), (1, "SUBSCRIBE", "ch1"),
        (2, "PSUBSCRIBE", "p*", "__key*"), (1, "SSUBSCRIBE", d), (1, "SUNSUBSCRIBE", "nosuch"),
        (2, "SUNSUBSCRIBE", e, e), (1, "SSUBSCRIBE", b), (1, "PING"), (2, "SUBSCRIBE", "ch2", "ch1"),
        (1, "SUNSUBSCRIBE", c), (1, "UNSUBSCRIBE", "ch1"), (3, "SUNSUBSCRIBE"), (1, "SUNSUBSCRIBE"),
        (1, "SUNSUBSCRIBE", a), (1, "SSUBSCRIBE", e), (3, "UNSUBSCRIBE", "ch2", "nosuch", "ch2"),
        (2, "PUNSUBSCRIBE"), (1, "PUNSUBSCRIBE"), (1, "UNSUBSCRIBE"), (1, "SUNSUBSCRIBE", e), (1, "PING"),
    ]


def shape(data):
    """The confirmations of a step: (kind, name, count) each; the names of a
    step that unsubscribes from all as a set (Redis's order is a hash table's)."""
    out = [tuple(v) if isinstance(v, list) else v for v in parsed(data)]
    if len(out) > 1 and out[0][0] in (b"sunsubscribe", b"unsubscribe", b"punsubscribe"):
        return sorted(o[1] for o in out), [o[2] for o in out]
    return out


@pytest.mark.parametrize("proto", [2, 3])
def test_confirmation_counts_are_the_clients_totals(proxy, cluster, standalone, proto):  # noqa: F811
    (a, b, c, d), e = shard_channels(cluster)
    hello = [("HELLO", "3")] if proto == 3 else []
    script = hello + steps(a, b, c, d, e)
    mine = exchange(proxy.port, *script)[len(hello):]
    theirs = exchange(standalone, *script)[len(hello):]
    for step, m, t in zip(script[len(hello):], mine, theirs):
        if step[0] > 1 and step[1].endswith("UNSUBSCRIBE") and len(step) == 2:
            assert shape(m) == shape(t), step
        else:
            assert m == t, step      # byte for byte: RESP2 arrays or RESP3 pushes, nulls included
    counts = [v[2] for v in parsed(b"".join(mine)) if v[0] == b"ssubscribe"]
    assert counts == [1, 2, 3, 3, 4, 4, 1]    # over three masters, as one Redis counts


def test_two_shard_channels_on_two_masters(proxy, cluster):
    """The issue's case: the second confirmation says 2, not its node's 1."""
    (a, _, c, _), _ = shard_channels(cluster)
    r = redis.Redis(host=HOST, port=proxy.port)
    ps = r.pubsub()
    ps.ssubscribe(a)
    ps.ssubscribe(c)
    got = [ps.get_message(timeout=3) for _ in range(2)]
    assert [(m["type"], m["data"]) for m in got] == [("ssubscribe", 1), ("ssubscribe", 2)]
    ps.close()
    r.close()


def numbers(port, channels, shard):
    c = redis.Redis(host=HOST, port=port)
    try:
        return (c.execute_command("PUBSUB", "NUMPAT"), c.execute_command("PUBSUB", "NUMSUB", *channels),
                sorted(x for x in c.execute_command("PUBSUB", "CHANNELS", "ps:*")),
                sorted(x for x in c.execute_command("PUBSUB", "CHANNELS", "__keyspace@0__:ps:*")),
                c.execute_command("PUBSUB", "SHARDNUMSUB", *shard),
                sorted(c.execute_command("PUBSUB", "SHARDCHANNELS", "ps:*")))
    finally:
        c.close()


@pytest.mark.parametrize("proto", [2, 3])
def test_pubsub_numbers_count_each_subscription_once(proxy, cluster, standalone, proto):  # noqa: F811
    """Patterns and channels that can match keyspace notifications are held on
    every master by the proxy; they count once, as on one Redis."""
    shard = [k.replace("sch", "ps:s") for k in shard_channels(cluster)[0]]
    channels = ["ps:one", "ps:two", "__keyspace@0__:ps:k", "ps:none"]
    results = []
    for port in (proxy.port, standalone):
        before = numbers(port, channels, shard)[0]
        clients = [RawClient(port) for _ in range(3)]
        for i, c in enumerate(clients):
            if proto == 3:
                c.send(command("HELLO", "3"))
                c.recv_until(replies(1))
            c.send(command("PSUBSCRIBE", "*", "__key*", "ps:p%d*" % i) + command("SUBSCRIBE", *channels[:3 - i]) +
                   command("SSUBSCRIBE", shard[0]) + command("SSUBSCRIBE", shard[1]) +
                   command("SSUBSCRIBE", shard[2 + i % 2]))
            c.recv_until(replies(3 + 3 - i + 2 + 1))
        got = numbers(port, channels, shard)
        results.append((got[0] - before,) + got[1:])
        for c in clients:
            c.close()
    assert results[0] == results[1]
    assert results[0][0] == 5 and results[0][1] == [b"ps:one", 3, b"ps:two", 2, b"__keyspace@0__:ps:k", 1,
                                                      b"ps:none", 0]


def test_direct_subscribers_of_the_home_master_count(proxy, cluster):
    """What is counted: every geproxy client's SUBSCRIBE and PSUBSCRIBE (they
    all live on the home master, the first master by address) and clients
    subscribed on the home master directly; not those of other nodes."""
    home = min(cluster.masters(), key=lambda p: "127.0.0.1:%d" % p)
    other = next(p for p in cluster.masters() if p != home)
    r = redis.Redis(host=HOST, port=proxy.port)
    base = r.execute_command("PUBSUB", "NUMPAT")
    direct = redis.Redis(host=HOST, port=home).pubsub()
    direct.psubscribe("ps:direct*")
    elsewhere = redis.Redis(host=HOST, port=other).pubsub()
    elsewhere.psubscribe("ps:elsewhere*")
    elsewhere.subscribe("ps:elsewhere")
    direct.subscribe("ps:direct")
    for ps in (direct, elsewhere):
        ps.get_message(timeout=2), ps.get_message(timeout=2)
    assert r.execute_command("PUBSUB", "NUMPAT") == base + 1
    assert r.execute_command("PUBSUB", "NUMSUB", "ps:direct", "ps:elsewhere") == [b"ps:direct", 1,
                                                                                  b"ps:elsewhere", 0]
    direct.close()
    elsewhere.close()
    r.close()


@pytest.mark.parametrize("proto", [2, 3])
def test_errors_made_here_keep_their_place(proxy, cluster, proto):
    """Pipelined: a shard subscription, then one the proxy refuses itself
    (cross-slot, or unsubscribing from what is on no connection): the refusal
    comes after the confirmation still due from the node, as asked."""
    (a, _, c, _), e = shard_channels(cluster)
    for rnd in range(10):
        cl = RawClient(proxy.port, timeout=10)
        try:
            if proto == 3:
                cl.send(command("HELLO", "3"))
                cl.recv_until(replies(1))
            cl.send(command("SSUBSCRIBE", a) + command("SSUBSCRIBE", c, e) + command("SSUBSCRIBE", e)
                    + command("UNSUBSCRIBE", "nosuch"))
            got = parsed(cl.recv_until(replies(4)))
        finally:
            cl.close()
        assert [g[0] if isinstance(g, list) else type(g).__name__ for g in got] == \
            [b"ssubscribe", "ReplyError", b"ssubscribe", b"unsubscribe"], (rnd, got)
        assert "CROSSSLOT" in str(got[1]) and got[0][1] == a.encode() and got[2][1] == e.encode(), got
