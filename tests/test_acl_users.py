"""Redis ACL users through the proxy (login.py): without [Authority], AUTH
user pass logs the client in as that Redis user, and every command it sends
reaches the nodes on connections logged in as that user, so Redis's own ACL
decides.  Tried by walking around it: keys, scripts, transactions, blocking
commands, pub/sub, listings, the proxy's own commands, and the user the proxy
itself logs in as."""
import pytest
import redis

from answerhelp import exchange, parsed, standalone  # noqa: F401 (fixture)
from clusterhelp import keys_per_master, owner_of
from conftest import HOST, RawClient, wait_for
from opshelp import ask, fields, info

USER, PASSWORD = "geproxy-acl-bob", "bob-secret"


@pytest.fixture
def bob(proxy, cluster):
    admin = redis.Redis(host=HOST, port=proxy.port)
    assert admin.execute_command("ACL", "SETUSER", USER, "reset", "on", ">" + PASSWORD, "~bob:*", "&bob:*",
                                 "+@all", "-flushall", "-flushdb", "-config", "-acl") == b"OK"
    yield admin
    assert admin.execute_command("ACL", "DELUSER", USER) == 1
    admin.close()


def login(proxy, protocol=2):
    return redis.Redis(host=HOST, port=proxy.port, username=USER, password=PASSWORD, protocol=protocol)


def test_acl_setuser_reaches_every_node(bob, cluster):
    for port in cluster.alive():  # replicas too: ACL users live per node
        assert cluster.client(port).execute_command("ACL", "GETUSER", USER) is not None


@pytest.mark.parametrize("protocol", [2, 3])
def test_user_keys_are_checked_by_redis(bob, proxy, cluster, protocol):
    c = login(proxy, protocol)
    assert c.execute_command("ACL", "WHOAMI") == b"geproxy-acl-bob"
    mine = [ks[0].replace("sc:", "bob:") for ks in keys_per_master(cluster, "sc:b", 1).values()]
    for k in mine:
        assert c.set(k, "v") and c.get(k) == b"v"
    assert c.mget(mine) == [b"v"] * len(mine)          # split over masters, each part as bob
    for bad in (lambda: c.set("other:k", "v"), lambda: c.get("other:k"),
                lambda: c.mget(mine + ["other:k"]), lambda: c.delete("other:k", mine[0]),
                lambda: c.eval("return redis.call('GET', KEYS[1])", 1, "other:k"),
                lambda: c.eval("return redis.call('SET', 'other:k', 1)", 0),   # an undeclared key
                lambda: c.blpop(["other:k"], timeout=1),
                lambda: c.publish("other:chan", "x"),
                lambda: c.flushall(), lambda: c.config_get("maxmemory"),
                lambda: c.client_kill_filter(_type="normal"),
                lambda: c.execute_command("ACL", "SETUSER", USER, "~*")):
        with pytest.raises(redis.exceptions.ResponseError, match="(?i)no permissions|can't access"):
            bad()
    assert bob.exists("other:k") == 0                  # nothing of it reached the cluster
    pipe = c.pipeline(transaction=True)
    pipe.set(mine[0] + "{x}", "1").set("other:{x}", "1")
    with pytest.raises(redis.exceptions.ResponseError):
        pipe.execute()
    assert bob.exists("other:{x}") == 0
    c.delete(*mine)
    c.close()


def test_subscribe_is_checked_by_redis(bob, proxy):
    c = login(proxy)
    ps = c.pubsub()
    with pytest.raises(redis.exceptions.ResponseError, match="(?i)no permissions"):
        ps.subscribe("other:chan")
        ps.get_message(timeout=2)
    ps.close()
    c.close()


def test_wrong_password_and_the_proxys_own_user(bob, proxy):
    before = int(fields(info(proxy.port, "stats"))["acl_access_denied_auth"])
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(host=HOST, port=proxy.port, username=USER, password="nope").ping()
    assert int(fields(info(proxy.port, "stats"))["acl_access_denied_auth"]) >= before + 1
    # the user geproxy logs in as cannot be changed or removed through it
    for args in (("SETUSER", "default", "off"), ("DELUSER", "default"), ("DELUSER", USER, "default")):
        with pytest.raises(redis.exceptions.ResponseError, match="logs in to its nodes"):
            bob.execute_command("ACL", *args)
    assert bob.ping()


def test_reset_logs_the_user_out(bob, proxy):
    c = redis.Redis(host=HOST, port=proxy.port, single_connection_client=True)
    assert c.execute_command("AUTH", USER, PASSWORD) is True
    with pytest.raises(redis.exceptions.ResponseError, match="(?i)no permissions"):
        c.get("other:k")
    assert c.execute_command("RESET") in ("RESET", b"RESET")
    assert c.execute_command("ACL", "WHOAMI") == b"default"
    assert c.get("other:k") is None
    c.close()


def test_a_changed_password_locks_the_user_out(bob, proxy, cluster):
    c = login(proxy)
    k = "bob:{pw}"
    assert c.set(k, "1")
    bob.execute_command("ACL", "SETUSER", USER, "resetpass", ">new-secret")
    c2 = redis.Redis(host=HOST, port=proxy.port, username=USER, password=PASSWORD)
    with pytest.raises(redis.exceptions.AuthenticationError):
        c2.ping()
    assert redis.Redis(host=HOST, port=proxy.port, username=USER, password="new-secret").get(k) == b"1"
    cluster.client(owner_of(cluster, k)).delete(k)
    c.close()


def test_no_redis_logins_under_authority(make_proxy, bob):
    """With [Authority] the proxy's classes decide; a Redis user is not one."""
    p = make_proxy(extra_conf="[Authority]\n[[default]]\nMode = read\n[[ops]]\nPassword = adm\nMode = admin\n")
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(host=HOST, port=p.port, username=USER, password=PASSWORD).ping()


def test_the_user_logs_in_on_every_node_directly(bob, cluster):
    """ACL SETUSER through the proxy reached masters and replicas: a client
    connecting to any node directly (or a failover) finds the user."""
    for port in cluster.alive():
        c = redis.Redis(host=HOST, port=port, username=USER, password=PASSWORD)
        assert b" user=%s " % USER.encode() in c.execute_command("CLIENT", "INFO"), port
        c.close()


def rules(value):
    """ACL rules with each line's words as a set: a node lists excluded commands in its hash table's order."""
    if isinstance(value, bytes):
        return frozenset(value.split())
    if isinstance(value, list):
        return [rules(v) for v in value]
    return value


def test_acl_listings_answer_as_a_node(bob, proxy, cluster):
    node = cluster.client(cluster.masters()[0])
    assert rules(bob.execute_command("ACL", "LIST")) == rules(node.execute_command("ACL", "LIST"))
    assert bob.execute_command("ACL", "USERS") == node.execute_command("ACL", "USERS")
    asked = (("ACL", "GETUSER", USER), ("ACL", "GETUSER", "nosuch"), ("ACL", "WHOAMI"), ("ACL", "NOSUCH"),
             ("ACL", "GETUSER"), ("ACL", "DELUSER", "nosuch"), ("ACL", "SETUSER", "x", "nosuchrule"))
    mine, theirs = exchange(proxy.port, *asked), exchange(cluster.masters()[0], *asked)
    assert rules(parsed(mine[0])) == rules(parsed(theirs[0])) and mine[1:] == theirs[1:]
    c = login(proxy, 3)
    assert c.execute_command("ACL", "WHOAMI") == USER.encode()
    c.close()


def test_client_kill_user_and_deluser_close_the_users_clients(bob, proxy, standalone):  # noqa: F811
    mine = [RawClient(proxy.port) for _ in range(2)]
    for c in mine:
        assert ask(c, "AUTH", USER, PASSWORD) == b"+OK\r\n"
    other = RawClient(proxy.port)
    assert ask(other, "PING") == b"+PONG\r\n"
    assert bob.execute_command("CLIENT", "KILL", "USER", USER) == 2
    assert all(c.wait_closed() for c in mine)
    assert bob.execute_command("CLIENT", "KILL", "USER", USER) == 0     # a user of the nodes, no client now
    for port in (proxy.port, standalone):
        assert exchange(port, ("CLIENT", "KILL", "USER", "nosuch"))[0] == b"-ERR No such user 'nosuch'\r\n"
    # ACL DELUSER closes the user's clients, as Redis closes its connections
    c = RawClient(proxy.port)
    assert ask(c, "AUTH", USER, PASSWORD) == b"+OK\r\n"
    assert bob.execute_command("ACL", "DELUSER", USER) == 1
    assert c.wait_closed()
    assert ask(other, "PING") == b"+PONG\r\n"
    bob.execute_command("ACL", "SETUSER", USER, "on", ">" + PASSWORD)  # for the fixture's DELUSER
    other.close()


def test_acl_is_admin_only_under_authority(make_proxy, cluster):
    p = make_proxy(extra_conf="[Authority]\n[[default]]\nMode = write\n[[ops]]\nPassword = ops-pw\nMode = admin\n")
    c = RawClient(p.port)
    for args in (("SETUSER", "geproxy-acl-x", "on"), ("DELUSER", "geproxy-acl-x"), ("LIST",), ("GETUSER", "default"),
                 ("LOAD",), ("SAVE",), ("USERS",), ("LOG",)):
        assert ask(c, "ACL", *args).startswith(b"-NOPERM"), args
    assert ask(c, "ACL", "WHOAMI") == b"$7\r\ndefault\r\n"
    assert ask(c, "AUTH", "ops-pw") == b"+OK\r\n"
    assert ask(c, "ACL", "SETUSER", "geproxy-acl-x", "on") == b"+OK\r\n"
    assert all(cluster.client(port).execute_command("ACL", "GETUSER", "geproxy-acl-x") for port in cluster.alive())
    assert ask(c, "ACL", "DELUSER", "geproxy-acl-x") == b":1\r\n"
    assert not any(cluster.client(port).execute_command("ACL", "GETUSER", "geproxy-acl-x")
                   for port in cluster.alive())
    c.close()


def test_users_survive_a_failover(fc, make_proxy):
    p = make_proxy(cluster=fc)
    admin = redis.Redis(host=HOST, port=p.port)
    assert admin.execute_command("ACL", "SETUSER", USER, "on", ">" + PASSWORD, "~*", "+@all") == b"OK"
    key = keys_per_master(fc, "fo", 1)
    old_master, k = next(iter(key.items()))
    replica = next(port for port in fc.replicas()
                   if fc.client(port).info("replication").get("master_port") == old_master)
    assert fc.client(replica).execute_command("CLUSTER", "FAILOVER") in (b"OK", True)
    assert wait_for(lambda: fc.client(replica).info("replication")["role"] == "master", 15)
    user = redis.Redis(host=HOST, port=p.port, username=USER, password=PASSWORD)

    def works():
        try:
            return user.set(k[0], "after") and user.get(k[0]) == b"after"
        except redis.RedisError:
            return False
    assert wait_for(works, 15)
    for port in (replica, old_master):      # the new master had it, and so does the old one
        assert redis.Redis(host=HOST, port=port, username=USER, password=PASSWORD).ping()
    # after the failover, users still reach every node, replicas included
    assert admin.execute_command("ACL", "SETUSER", "geproxy-acl-new", "on", ">x") == b"OK"
    assert all(fc.client(port).execute_command("ACL", "GETUSER", "geproxy-acl-new") for port in fc.alive())
    assert admin.execute_command("ACL", "DELUSER", "geproxy-acl-new", USER) == 2
    assert not any(fc.client(port).execute_command("ACL", "GETUSER", USER) for port in fc.alive())
    user.close()
    admin.close()
