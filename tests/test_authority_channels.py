"""[Authority] on pub/sub channels, tried by walking around it: a class with key
prefixes may subscribe only to channels under its read prefixes and publish
only under its write prefixes; patterns that could match outside them, and
keyevent notifications, are refused; whatever slips through a pattern is
dropped on the way out.  The nodes are asked too: a refused PUBLISH reached
no subscriber, a refused PSUBSCRIBE left no pattern on any master."""

import time

import pytest

from authhelp import CLASSES, proxy_with, raw_clients
from conftest import replies, resp_end
from geproxy.resp import command
from clusterhelp import owner_of
from opshelp import ask

AUTHORITY = CLASSES
NOPERM_CHANNEL = b"-NOPERM this user has no permissions to access one of the channels used as arguments\r\n"


p = proxy_with(AUTHORITY)


client = raw_clients()


def patterns_on_nodes(cluster):
    return sum(cluster.client(m).execute_command("PUBSUB", "NUMPAT") for m in cluster.masters())


def channels_on_nodes(cluster):
    out = set()
    for m in cluster.masters():
        c = cluster.client(m)
        out |= set(c.execute_command("PUBSUB", "CHANNELS")) | set(c.execute_command("PUBSUB", "SHARDCHANNELS"))
    return out


@pytest.mark.parametrize("password, refused", [
    (None, ["*", "pub*", "p*", "[p]ub.*", "__keyevent@0__:*", "__key*", "__keyspace@0__:*"]),
    ("app-pw", ["*", "Use*", "Us?r*", "U[s]er*", "\\User*", "Other*", "__keyevent@0__:set", "__keyevent@*",
                "__keyspace@0__:Other*", "__keyspace@?__:User*", "__keyspace@[0]__:User*", "__keyspace@*__:*",
                "__keyspace@*__:*__:User*", "_*"]),
])
def test_patterns_that_could_match_outside_are_refused(p, cluster, client, password, refused):
    before = patterns_on_nodes(cluster)
    c = client(password)
    for pattern in refused:
        assert ask(c, "PSUBSCRIBE", pattern) == NOPERM_CHANNEL, pattern
        assert ask(c, "PSUBSCRIBE", "User:ok*", pattern) == NOPERM_CHANNEL, pattern   # one bad one refuses all
    assert ask(c, "PING") == b"+PONG\r\n"        # not in the subscribed state
    assert patterns_on_nodes(cluster) == before


def test_allowed_channels_and_patterns(p, client):
    c = client("app-pw")
    c.send(command("PSUBSCRIBE", "User*", "Stats:[0-9]*", "__keyspace@0__:User*", "__keyspace@*__:Stats*")
           + command("SUBSCRIBE", "User:chat", "Stats", "__keyspace@0__:User:1"))
    got = c.recv_until(replies(7))
    assert got.count(b"psubscribe") == 4 and got.count(b"subscribe") == 7 and b"NOPERM" not in got
    d = client()
    assert ask(d, "SUBSCRIBE", "pub.news").startswith(b"*3\r\n$9\r\nsubscribe")


@pytest.mark.parametrize("args", [
    ["SUBSCRIBE", "admin"], ["SUBSCRIBE", "User:ok", "admin"], ["SSUBSCRIBE", "Other:{x}"],
    ["SUBSCRIBE", "__keyevent@0__:del"], ["SUBSCRIBE", "__keyspace@0__:Other:1"], ["SUBSCRIBE", "__keyboard"],
    ["PUBLISH", "admin", "x"], ["PUBLISH", "Stats:1", "x"], ["SPUBLISH", "Other:{x}", "x"],
    ["SPUBLISH", "Stats:{x}", "x"], ["PUBLISH", "__keyspace@0__:Other:1", "del"],
    ["PUBSUB", "CHANNELS"], ["PUBSUB", "CHANNELS", "*"], ["PUBSUB", "CHANNELS", "Use*"],
    ["PUBSUB", "SHARDCHANNELS"], ["PUBSUB", "SHARDCHANNELS", "O*"],
    ["PUBSUB", "NUMSUB", "User:1", "admin"], ["PUBSUB", "SHARDNUMSUB", "admin"],
])
def test_channels_outside_the_prefixes_are_refused(p, cluster, client, args):
    before = channels_on_nodes(cluster)
    c = client("app-pw")
    assert ask(c, *args) == NOPERM_CHANNEL
    assert ask(c, "PING") == b"+PONG\r\n"
    assert channels_on_nodes(cluster) == before


def test_refused_publish_reaches_no_subscriber_on_the_nodes(p, cluster, client):
    node = cluster.client(cluster.masters()[-1]).pubsub()
    node.subscribe("admin", "Stats:1", "User:ok")
    for _ in range(3):
        node.get_message(timeout=1)         # the confirmations
    try:
        c = client("app-pw")
        assert ask(c, "PUBLISH", "admin", "leak") == NOPERM_CHANNEL
        assert ask(c, "PUBLISH", "Stats:1", "leak") == NOPERM_CHANNEL
        assert ask(c, "PUBLISH", "User:ok", "fine").startswith(b":")   # the home master's count
        heard = []
        deadline = time.time() + 5
        while time.time() < deadline and not heard:
            m = node.get_message(timeout=0.5)
            if m and m["type"] == "message":
                heard.append((m["channel"], m["data"]))
        time.sleep(0.2)
        m = node.get_message(timeout=0.2)
        assert heard == [(b"User:ok", b"fine")] and m is None
        d = client()
        assert ask(d, "PUBLISH", "pub.x", "x").startswith(b"-NOPERM")     # the default class reads only
    finally:
        node.close()


def listen(c, until_channel, limit=50):
    """Messages read until one on `until_channel`: [(channel, data)]."""
    out = []
    for _ in range(limit):
        buf, start = c.recv_until(replies(1), timeout=10), 0     # one read may hold several
        while start < len(buf):
            end = resp_end(buf, start)
            parts = buf[start:end].split(b"\r\n")
            start = end
            if parts[2] == b"pmessage":
                out.append((parts[6], parts[8]))
            elif parts[2] == b"message":
                out.append((parts[4], parts[6]))
        if out and out[-1][0] == until_channel:
            return out
    raise AssertionError("no message on %r: %r" % (until_channel, out))


def test_a_prefixed_subscriber_hears_only_its_channels(p, client):
    app = client("app-pw")
    ops = client("ops-pw")
    app.send(command("PSUBSCRIBE", "User*", "Stats*"))
    app.recv_until(replies(2))
    for channel in ("admin", "User:chat", "Other", "Stats:x", "User:end"):
        assert ask(ops, "PUBLISH", channel, "m-" + channel).startswith(b":")
    assert listen(app, b"User:end") == [(b"User:chat", b"m-User:chat"), (b"Stats:x", b"m-Stats:x"),
                                        (b"User:end", b"m-User:end")]


def test_keyspace_notifications_follow_the_keys_prefixes(p, cluster, client):
    """`__keyspace@*__:User*` would match the channel of key `Other__:User1` (the
    `*` swallows `0__:Other`): the proxy drops it on the way out.  Notifications
    come from the key's master: each master is tried (one hash tag per master,
    so a round's notifications come in order)."""
    ops = client("ops-pw")
    assert ask(ops, "CONFIG", "SET", "notify-keyspace-events", "KA") == b"+OK\r\n"
    try:
        app = client("app-pw")
        app.send(command("PSUBSCRIBE", "__keyspace@*__:User*"))
        app.recv_until(replies(1))
        time.sleep(0.3)      # the subscriptions reach every master
        tags = {}
        for i in range(100):
            tags.setdefault(owner_of(cluster, "{t%d}" % i), "{t%d}" % i)
        assert len(tags) == len(cluster.masters())
        for tag in tags.values():
            for key in ("Other__:User1" + tag, "Other:1" + tag, "User:1" + tag, "User:end" + tag):
                assert ask(ops, "SET", key, "v") == b"+OK\r\n"
            heard = listen(app, b"__keyspace@0__:User:end" + tag.encode())
            assert [h for h in heard if h[0].endswith(tag.encode())] == [
                (b"__keyspace@0__:User:1" + tag.encode(), b"set"), (b"__keyspace@0__:User:end" + tag.encode(), b"set")]
            assert not [h for h in heard if b"Other" in h[0]]
        for tag in tags.values():
            assert ask(ops, "DEL", "Other__:User1" + tag, "Other:1" + tag, "User:1" + tag, "User:end" + tag) == b":4\r\n"
    finally:
        assert ask(ops, "CONFIG", "SET", "notify-keyspace-events", "") == b"+OK\r\n"


def test_logging_in_as_a_prefixed_class_while_subscribed_narrows_what_is_heard(p, client):
    """RESP3 allows AUTH while subscribed: the channels heard are the class's at delivery."""
    c = client("ops-pw")
    assert ask(c, "HELLO", "3").startswith(b"%")
    c.send(command("PSUBSCRIBE", "*"))
    c.recv_until(replies(1))
    assert ask(c, "AUTH", "app-pw") == b"+OK\r\n"
    ops = client("ops-pw")
    for channel in ("admin", "User:end"):
        assert ask(ops, "PUBLISH", channel, "m").startswith(b":")
    assert listen(c, b"User:end") == [(b"User:end", b"m")]


def test_pubsub_listings_for_a_prefixed_class(p, client):
    sub = client("ops-pw")
    sub.send(command("SUBSCRIBE", "User:listed", "admin-listed"))
    sub.recv_until(replies(2))
    app = client("app-pw")
    assert ask(app, "PUBSUB", "CHANNELS", "User:list*") == b"*1\r\n$11\r\nUser:listed\r\n"
    assert ask(app, "PUBSUB", "NUMSUB", "User:listed") == b"*2\r\n$11\r\nUser:listed\r\n:1\r\n"
    assert ask(app, "PUBSUB", "NUMPAT").startswith(b":")
    ops = client("ops-pw")
    assert b"admin-listed" in ask(ops, "PUBSUB", "CHANNELS")
