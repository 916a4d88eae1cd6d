"""Redis ACL users through the proxy (login.py): without [Authority], AUTH
user pass logs the client in as that Redis user, and every command it sends
reaches the nodes on connections logged in as that user, so Redis's own ACL
decides.  Tried by walking around it: keys, scripts, transactions, blocking
commands, pub/sub, listings, the proxy's own commands, and the user the proxy
itself logs in as."""
import pytest
import redis

from clusterhelp import keys_per_master, owner_of
from conftest import HOST
from opshelp import fields, info

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
