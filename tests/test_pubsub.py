"""Pub/sub through the proxy: SUBSCRIBE / PSUBSCRIBE (cluster-wide channels),
SSUBSCRIBE (shard channels, one backend connection per master), the RESP2
subscribed context, RESP3 pushes, and releasing backend connections."""

import threading
import time

import hiredis
import pytest
import redis

from answerhelp import parsed
from clusterhelp import backend_connections, keys_per_master, wait_for
from conftest import replies
from geproxy.resp import command

ONLY = "only \\(P\\|S\\)SUBSCRIBE / \\(P\\|S\\)UNSUBSCRIBE / PING / QUIT / RESET are allowed"


def read(c, n, timeout=3):
    return parsed(c.recv_until(replies(n), timeout=timeout))


def publish_until(pub, channel, msg, received, timeout=3):
    """PUBLISH goes to one master and travels the cluster bus: publish, then poll."""
    pub.publish(channel, msg)
    return wait_for(received, timeout)


def test_redis_py_subscribe_and_psubscribe(proxy, r):
    ps = redis.Redis(port=proxy.port, protocol=2).pubsub()
    try:
        ps.subscribe("ps:a")
        ps.psubscribe("ps:p:*")
        assert ps.get_message(timeout=2)["type"] == "subscribe"
        assert ps.get_message(timeout=2)["type"] == "psubscribe"
        r.publish("ps:a", "one")
        r.publish("ps:p:x", "two")
        got = [ps.get_message(timeout=3) for _ in range(2)]
        assert {(m["type"], m["channel"], m["data"]) for m in got} == {
            ("message", b"ps:a", b"one"), ("pmessage", b"ps:p:x", b"two")}
        assert [m["pattern"] for m in got if m["type"] == "pmessage"] == [b"ps:p:*"]
        ps.unsubscribe("ps:a")
        ps.punsubscribe("ps:p:*")
        assert [ps.get_message(timeout=2)["type"] for _ in range(2)] == ["unsubscribe", "punsubscribe"]
        r.publish("ps:a", "after")
        assert ps.get_message(timeout=0.5) is None
    finally:
        ps.close()


def test_raw_resp2_subscribed_context(proxy, raw, r):
    c = raw(proxy.port)
    c.send(command("SUBSCRIBE", "ps:r2a", "ps:r2b") + command("PSUBSCRIBE", "ps:r2p*"))
    assert c.recv_until(replies(3)) == (
        b"*3\r\n$9\r\nsubscribe\r\n$6\r\nps:r2a\r\n:1\r\n"
        b"*3\r\n$9\r\nsubscribe\r\n$6\r\nps:r2b\r\n:2\r\n"
        b"*3\r\n$10\r\npsubscribe\r\n$7\r\nps:r2p*\r\n:3\r\n")
    r.publish("ps:r2b", "hello")
    assert c.recv_until(replies(1)) == b"*3\r\n$7\r\nmessage\r\n$6\r\nps:r2b\r\n$5\r\nhello\r\n"
    r.publish("ps:r2pq", "pat")
    assert c.recv_until(replies(1)) == b"*4\r\n$8\r\npmessage\r\n$7\r\nps:r2p*\r\n$7\r\nps:r2pq\r\n$3\r\npat\r\n"
    c.send(command("GET", "x"))
    got = read(c, 1)
    assert isinstance(got[0], hiredis.ReplyError) and "Can't execute 'get'" in str(got[0])
    c.send(command("PING"))
    assert read(c, 1) == [[b"pong", b""]]
    c.send(command("PING", "hi"))
    assert read(c, 1) == [[b"pong", b"hi"]]
    c.send(command("UNSUBSCRIBE"))
    assert sorted(m[1] for m in read(c, 2)) == [b"ps:r2a", b"ps:r2b"]
    c.send(command("PUNSUBSCRIBE"))
    assert read(c, 1) == [[b"punsubscribe", b"ps:r2p*", 0]]
    c.send(command("SET", "ps:after", "1") + command("GET", "ps:after"))
    assert c.recv_until(replies(2)) == b"+OK\r\n$1\r\n1\r\n"


def test_redis_py_error_while_subscribed(proxy):
    c = redis.Redis(port=proxy.port, protocol=2)
    conn = c.connection_pool.get_connection()
    try:
        conn.send_command("SUBSCRIBE", "ps:ctx")
        assert conn.read_response() == [b"subscribe", b"ps:ctx", 1]
        conn.send_command("GET", "k")
        with pytest.raises(redis.ResponseError, match=ONLY):
            conn.read_response()
        conn.send_command("PING")
        assert conn.read_response() == [b"pong", b""]
    finally:
        conn.disconnect()
        c.close()


def test_resp3_pushes(proxy, raw, r):
    c = raw(proxy.port)
    c.send(command("HELLO", "3"))
    c.recv_until(replies(1))
    c.send(command("SUBSCRIBE", "ps:r3") + command("PSUBSCRIBE", "ps:r3p*"))
    assert c.recv_until(replies(2)) == (b">3\r\n$9\r\nsubscribe\r\n$5\r\nps:r3\r\n:1\r\n"
                                        b">3\r\n$10\r\npsubscribe\r\n$7\r\nps:r3p*\r\n:2\r\n")
    r.publish("ps:r3", "m1")
    assert c.recv_until(replies(1)) == b">3\r\n$7\r\nmessage\r\n$5\r\nps:r3\r\n$2\r\nm1\r\n"
    # RESP3: any command works while subscribed
    c.send(command("SET", "ps:r3k", "v") + command("GET", "ps:r3k") + command("PING"))
    assert c.recv_until(replies(3)) == b"+OK\r\n$1\r\nv\r\n+PONG\r\n"
    c.send(command("UNSUBSCRIBE", "ps:r3"))
    assert c.recv_until(replies(1)) == b">3\r\n$11\r\nunsubscribe\r\n$5\r\nps:r3\r\n:1\r\n"


def test_resp3_replies_and_pushes_interleaved(proxy, raw, r):
    """Commands and messages at once: the replies keep their order, each
    message arrives once, as pushes between whole replies."""
    c = raw(proxy.port)
    c.send(command("HELLO", "3") + command("SUBSCRIBE", "ps:mix"))
    c.recv_until(replies(2))
    r.set("ps:mix:k", "v" * 1000)
    pub = threading.Thread(target=lambda: [r.publish("ps:mix", "m%d" % i) for i in range(100)])
    pub.start()
    c.send(b"".join(command("GET", "ps:mix:k") for _ in range(100)) + command("ECHO", "end"))
    buf = c.recv_until(replies(101))
    pub.join()
    values = [v for v in parsed(buf)]
    deadline = time.time() + 3
    while sum(isinstance(v, list) for v in values) < 100 and time.time() < deadline:
        values += read(c, 1)
    pushes = [v for v in values if isinstance(v, list)]
    plain = [v for v in values if not isinstance(v, list)]
    assert plain == [b"v" * 1000] * 100 + [b"end"]
    assert sorted(p[2] for p in pushes) == sorted(b"m%d" % i for i in range(100))


def test_messages_of_one_publisher_arrive_in_order(proxy, raw, r):
    """One Redis delivers a publisher's messages in the order it sent them
    (one at a time, or pipelined); so must the proxy."""
    c = raw(proxy.port)
    c.send(command("SUBSCRIBE", "ps:order"))
    read(c, 1)
    for i in range(50):
        r.publish("ps:order", "m%d" % i)
    p = r.pipeline(transaction=False)
    for i in range(50, 200):
        p.publish("ps:order", "m%d" % i)
    p.execute()
    got = read(c, 200)
    assert [m[2] for m in got] == [b"m%d" % i for i in range(200)]


def test_pipelined_commands_in_subscribed_context_keep_order(proxy, raw):
    """Replies come in the order of the commands, the proxy's own errors included."""
    c = raw(proxy.port)
    c.send(command("SUBSCRIBE", "ps:ord") + command("GET", "x"))
    got = read(c, 2)
    assert got[0] == [b"subscribe", b"ps:ord", 1]
    assert isinstance(got[1], hiredis.ReplyError)
    c.send(command("GET", "x") + command("PING") + command("PING", "hi") + command("SET", "a", "b"))
    got = read(c, 4)
    assert isinstance(got[0], hiredis.ReplyError) and "Can't execute 'get'" in str(got[0])
    assert got[1:3] == [[b"pong", b""], [b"pong", b"hi"]]
    assert isinstance(got[3], hiredis.ReplyError) and "'set'" in str(got[3])


def test_sharded_channels_on_several_masters(make_proxy, cluster, raw):
    p = make_proxy()
    chans = [ks[0] for ks in keys_per_master(cluster, "ps:shard", 1).values()]
    pub = redis.Redis(port=p.port, protocol=2)
    pub.dbsize()  # the shared links to every master are up: only private connections change
    base = backend_connections(p.port)
    c = raw(p.port)
    for i, ch in enumerate(chans):
        c.send(command("SSUBSCRIBE", ch))
        assert read(c, 1) == [[b"ssubscribe", ch.encode(), i + 1]]   # the client's total, as on one Redis
    assert backend_connections(p.port) == base + 3
    for i, ch in enumerate(chans):
        assert pub.spublish(ch, "s%d" % i) == 1
        assert read(c, 1) == [[b"smessage", ch.encode(), b"s%d" % i]]
    with pytest.raises(redis.ResponseError, match="CROSSSLOT|same slot"):
        pub.execute_command("SSUBSCRIBE", chans[0], chans[1])
    c.send(command("SSUBSCRIBE", "{ps}1", "{ps}2"))
    assert read(c, 2) == [[b"ssubscribe", b"{ps}1", 4], [b"ssubscribe", b"{ps}2", 5]]
    assert backend_connections(p.port) == base + 3
    c.send(command("SUNSUBSCRIBE", chans[0]))
    assert read(c, 1) == [[b"sunsubscribe", chans[0].encode(), 4]]
    assert pub.spublish(chans[0], "gone") == 0
    c.send(command("SPUBLISH", chans[1], "x"))
    got = read(c, 1)
    assert isinstance(got[0], hiredis.ReplyError)  # still in the RESP2 subscribed context
    pub.close()


def test_pipelined_unsubscribe_then_command(proxy, raw):
    """On one Redis, UNSUBSCRIBE leaves the subscribed context before the
    next command of the same write is looked at."""
    c = raw(proxy.port)
    c.send(command("SUBSCRIBE", "ps:pipe"))
    read(c, 1)
    c.send(command("UNSUBSCRIBE", "ps:pipe") + command("SET", "ps:pipe:k", "1") + command("GET", "ps:pipe:k"))
    assert c.recv_until(replies(3)) == (b"*3\r\n$11\r\nunsubscribe\r\n$7\r\nps:pipe\r\n:0\r\n"
                                        b"+OK\r\n$1\r\n1\r\n")


def test_reset_and_quit_leave_the_subscribed_context(proxy, raw, r):
    c = raw(proxy.port)
    c.send(command("SUBSCRIBE", "ps:reset"))
    read(c, 1)
    c.send(command("RESET"))
    assert c.recv_until(replies(1)) == b"+RESET\r\n"
    c.send(command("SET", "ps:reset:k", "1"))
    assert c.recv_until(replies(1)) == b"+OK\r\n"
    assert wait_for(lambda: r.pubsub_numsub("ps:reset") == [(b"ps:reset", 0)])
    q = raw(proxy.port)
    q.send(command("SUBSCRIBE", "ps:quit"))
    read(q, 1)
    q.send(command("QUIT"))
    assert q.recv_until(replies(1)) == b"+OK\r\n"
    assert q.wait_closed()


def test_disconnect_while_subscribed_releases_backend_connections(make_proxy, cluster, raw):
    p = make_proxy()
    chans = [ks[0] for ks in keys_per_master(cluster, "ps:rel", 1).values()]
    r = redis.Redis(port=p.port, protocol=2)
    r.dbsize()  # the shared links to every master are up: only private connections change
    base = backend_connections(p.port)
    clients = []
    for proto in (b"2", b"3"):
        c = raw(p.port)
        c.send(command("HELLO", proto))
        read(c, 1)
        c.send(command("SUBSCRIBE", "ps:rel:a") + command("PSUBSCRIBE", "ps:rel:*")
               + command("SSUBSCRIBE", chans[0]) + command("SSUBSCRIBE", chans[1]))
        read(c, 4)
        clients.append(c)
    assert backend_connections(p.port) == base + 6
    assert r.pubsub_numsub("ps:rel:a") == [(b"ps:rel:a", 2)]
    for c in clients:
        c.close()
    assert wait_for(lambda: backend_connections(p.port) == base, 5), backend_connections(p.port)
    assert wait_for(lambda: r.pubsub_numsub("ps:rel:a") == [(b"ps:rel:a", 0)], 3)
    r.close()


def test_many_subscribers_each_get_every_message(proxy, r):
    subs = [redis.Redis(port=proxy.port, protocol=2).pubsub() for _ in range(20)]
    try:
        for ps in subs:
            ps.subscribe("ps:many")
            assert ps.get_message(timeout=2)["type"] == "subscribe"
        for i in range(5):
            r.publish("ps:many", "m%d" % i)
        for ps in subs:
            got = [ps.get_message(timeout=3) for _ in range(5)]
            assert sorted(m and m["data"] for m in got) == [b"m%d" % i for i in range(5)]
    finally:
        for ps in subs:
            ps.close()


def test_last_unsubscribe_closes_the_backend_connection(make_proxy, raw):
    """pubsub.py: "When the last subscription is gone, or the client is, the
    connections are closed." """
    p = make_proxy()
    r = redis.Redis(port=p.port)
    r.dbsize()
    base = backend_connections(p.port)
    c = raw(p.port)
    c.send(command("SUBSCRIBE", "ps:last"))
    read(c, 1)
    assert backend_connections(p.port) == base + 1
    c.send(command("UNSUBSCRIBE", "ps:last"))
    assert read(c, 1) == [[b"unsubscribe", b"ps:last", 0]]
    assert wait_for(lambda: backend_connections(p.port) == base, 3), backend_connections(p.port)
    r.close()


def test_publish_counts_every_receiver_as_one_redis_would(proxy, r):
    """Subscribers of channels in every master's slots, and a pattern: PUBLISH
    returns how many clients got the message, whoever subscribed to what."""
    import redis as redis_py
    from conftest import HOST
    chans = ["ps:count:%d" % i for i in range(30)]   # slots all over the cluster
    subs = [redis_py.Redis(host=HOST, port=proxy.port, protocol=p).pubsub() for p in (2, 3)]
    subs[0].subscribe(*chans)
    subs[1].subscribe(*chans[::2])
    subs[1].psubscribe("ps:count:*")
    for s in subs:
        while s.get_message(timeout=0.3):
            pass
    try:
        for i, ch in enumerate(chans):
            # the first subscriber, the second's channel (even ones), its pattern
            assert r.publish(ch, "m") == 1 + (i % 2 == 0) + 1, ch
        assert r.publish("ps:count:none-of-them", "m") == 1   # the pattern only
        assert r.publish("ps:other", "m") == 0
    finally:
        for s in subs:
            s.close()


def test_keyspace_notifications_from_every_master_once(proxy, r, cluster):
    """Notifications are published on the node that holds the key: a pattern
    that can match them hears every master; PUBLISH still arrives once."""
    import redis as redis_py
    from conftest import HOST
    from clusterhelp import keys_per_master
    assert r.config_set("notify-keyspace-events", "KA")
    try:
        keys = [ks[0] for ks in keys_per_master(cluster, "ps:ks", 1).values()]
        for proto in (2, 3):
            ps = redis_py.Redis(host=HOST, port=proxy.port, protocol=proto).pubsub()
            ps.psubscribe("*")
            assert ps.get_message(timeout=1)["type"] == "psubscribe"
            for k in keys:
                r.set(k, "v")
            r.publish("ps:ks:plain", "hello")
            got = []
            deadline = time.time() + 3
            while time.time() < deadline and len(got) < len(keys) + 1:
                m = ps.get_message(timeout=0.2)
                if m and m["type"] == "pmessage":
                    got.append((m["channel"], m["data"]))
            time.sleep(0.3)
            while True:   # nothing more: no notification or message twice
                m = ps.get_message(timeout=0.2)
                if not m:
                    break
                got.append((m["channel"], m["data"]))
            want = [(b"__keyspace@0__:" + k.encode(), b"set") for k in keys] + [(b"ps:ks:plain", b"hello")]
            assert sorted(got) == sorted(want), proto
            ps.close()
    finally:
        r.config_set("notify-keyspace-events", "")


def test_confirmed_subscription_misses_nothing(proxy, r, cluster):
    """The confirmation of a PSUBSCRIBE that hears keyspace notifications comes
    only once every master has the subscription: writes made right after it
    on every master are all heard, 200 times over; PUBLISH too."""
    from conftest import RawClient
    from clusterhelp import keys_per_master
    from geproxy.resp import command
    assert r.config_set("notify-keyspace-events", "KA")
    try:
        keys = [ks[0] for ks in keys_per_master(cluster, "ps:conf", 1).values()]
        writer = RawClient(proxy.port)
        lost = []
        for round_ in range(200):
            sub = RawClient(proxy.port)
            sub.send(command("PSUBSCRIBE", "__keyspace@0__:ps:conf*", "ps:conf:chan:%d" % round_))
            sub.recv_until(lambda b: b.count(b"psubscribe") == 2)      # both confirmed
            writer.send(b"".join(command("SET", k, round_) for k in keys) +
                        command("PUBLISH", "ps:conf:chan:%d" % round_, "hi"))
            writer.recv_until(lambda b: b.count(b"\r\n") >= len(keys) + 1)
            want = len(keys) + 1
            try:
                sub.recv_until(lambda b: b.count(b"pmessage") >= want, timeout=5)
            except TimeoutError as e:
                lost.append((round_, str(e)[:200]))
            sub.close()
            if len(lost) >= 3:
                break
        writer.close()
        assert not lost, "rounds lost messages (stopped at 3), e.g. %r" % (lost[0],)
    finally:
        r.config_set("notify-keyspace-events", "")
