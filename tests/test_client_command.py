"""CLIENT answered by the proxy about its own clients: LIST/INFO with Redis's
fields, KILL in its forms, PAUSE/UNPAUSE, UNBLOCK, REPLY; and under
[Authority], other clients are admin business."""
import threading
import time

import pytest
import redis

from conftest import HOST, RawClient, replies, wait_for
from geproxy.resp import command
from opshelp import ask

FIELDS = ("id addr laddr fd name age idle flags db sub psub ssub multi qbuf qbuf-free argv-mem multi-mem obl oll "
          "omem tot-mem events cmd user redir resp lib-name lib-ver").split()


def parse_line(line):
    return dict(kv.split("=", 1) for kv in line.split())


@pytest.fixture
def c(proxy):
    client = redis.Redis(host=HOST, port=proxy.port, socket_timeout=10)
    yield client
    client.close()


def test_list_and_info_have_redis_fields(proxy, c):
    me = c.client_info()
    assert set(FIELDS) <= set(me), set(FIELDS) - set(me)
    assert me["cmd"] == "client|info" and me["flags"] == "N" and str(me["db"]) == "0"
    mine = [x for x in c.client_list() if int(x["id"]) == c.client_id()][0]
    assert mine["cmd"] == "client|list"
    other = redis.Redis(host=HOST, port=proxy.port)
    other.client_setname("the-other")
    listed = {x["name"]: x for x in c.client_list()}
    assert "the-other" in listed
    assert [x["name"] for x in c.client_list(client_id=[other.client_id()])] == ["the-other"]
    ps = other.pubsub()
    ps.subscribe("cc:chan")
    assert wait_for(lambda: [(str(x["sub"]), x["flags"]) for x in c.client_list(_type="pubsub")] == [("1", "P")], 2)
    assert all(str(x["sub"]) == "0" for x in c.client_list(_type="normal"))
    ps.close()
    other.close()


def test_kill_by_id_addr_and_filters(proxy, c):
    victims = [RawClient(proxy.port) for _ in range(3)]
    ids = [int(ask(v, "CLIENT", "ID")[1:-2]) for v in victims]
    assert c.execute_command("CLIENT", "KILL", "ID", ids[0]) == 1
    assert victims[0].wait_closed(3)
    addr = [x["addr"] for x in c.client_list() if int(x["id"]) == ids[1]][0]
    assert c.execute_command("CLIENT", "KILL", addr) in (True, b"OK")    # the old form
    assert victims[1].wait_closed(3)
    with pytest.raises(redis.ResponseError, match="No such client"):
        c.execute_command("CLIENT", "KILL", "127.0.0.1:1")
    assert c.execute_command("CLIENT", "KILL", "ID", ids[2], "SKIPME", "yes") == 1
    assert victims[2].wait_closed(3)
    assert c.execute_command("CLIENT", "KILL", "ID", c.client_id()) == 0   # SKIPME yes by default
    assert c.ping()
    for v in victims:
        v.close()


def test_kill_closes_a_blocked_clients_backend_connection(proxy, c):
    blocked = RawClient(proxy.port)
    bid = int(ask(blocked, "CLIENT", "ID")[1:-2])
    blocked.send(b"BLPOP cc:never 0\r\n")
    assert wait_for(lambda: c.info("clients")["blocked_clients"] == 1, 3)
    assert c.execute_command("CLIENT", "KILL", "ID", bid) == 1
    assert blocked.wait_closed(3)
    assert wait_for(lambda: c.info("clients")["blocked_clients"] == 0, 3)
    blocked.close()


def test_pause_write_holds_writes_not_reads(proxy, c):
    c.set("cc:p", "before")
    assert c.execute_command("CLIENT", "PAUSE", 1500, "WRITE")
    other = redis.Redis(host=HOST, port=proxy.port)
    start = time.time()
    assert other.get("cc:p") == b"before"          # reads go on
    assert time.time() - start < 0.5
    done = {}
    t = threading.Thread(target=lambda: done.setdefault("set", (other.set("cc:p", "after"), time.time())))
    t.start()
    time.sleep(0.3)
    assert "set" not in done                        # the write waits
    assert c.execute_command("CLIENT", "UNPAUSE")
    t.join(3)
    assert done["set"][0] and done["set"][1] - start < 1.2
    assert c.get("cc:p") == b"after"
    other.close()


def test_pause_answers_what_redis_refuses_before_it_pauses(proxy, c):
    """Unknown commands, wrong arity and unknown subcommands are errors at once under
    a pause, as Redis checks them before it holds a client (unit/pause hung on this)."""
    assert c.execute_command("CLIENT", "PAUSE", 20000, "WRITE")
    try:
        other = RawClient(proxy.port)
        other.send(b"SET FOO\r\nNOSUCHCOMMAND x\r\nOBJECT NOSUCH x\r\nSET\r\n")
        got = other.recv_until(replies(4), timeout=10)   # held, it would take the whole pause (20 s)
        assert got.count(b"-ERR") == 4, got
        assert b"wrong number of arguments for 'set'" in got and b"unknown command" in got
        other.send(b"SET cc:held 1\r\n")                # a valid write is still held
        with pytest.raises(TimeoutError):
            other.recv_until(replies(1), timeout=0.5)
    finally:
        assert c.execute_command("CLIENT", "UNPAUSE")
    assert other.recv_until(replies(1), timeout=10) == b"+OK\r\n"
    other.close()


def test_pause_write_holds_what_redis_holds(proxy, c, raw):
    """Under PAUSE WRITE: writes, PUBLISH, PFCOUNT, EXEC of a writing
    transaction and scripts that may write wait, each counted in
    blocked_clients; reads, EVAL_RO, scripts and functions declared no-writes,
    and read-only transactions go on."""
    c.function_load("#!lua name=geproxy_pause\nredis.register_function{function_name='pz_ro', "
                    "callback=function() return 'ro' end, flags={'no-writes'}}\n"
                    "redis.register_function('pz_rw', function() return 'rw' end)", replace=True)
    ro_sha = c.script_load("#!lua flags=no-writes\nreturn 'cached'")
    c.delete("cc:p", "cc:t")
    txn = raw(proxy.port)
    txn.send(command("MULTI") + command("SET", "cc:t", "1"))
    assert txn.recv_until(replies(2)) == b"+OK\r\n+QUEUED\r\n"
    assert c.execute_command("CLIENT", "PAUSE", 20000, "WRITE")
    try:
        held = {"set": command("SET", "cc:p", "x"), "publish": command("PUBLISH", "cc:ch", "m"),
                "pfcount": command("PFCOUNT", "cc:hll"), "eval": command("EVAL", "return 1", "0"),
                "shebang": command("EVAL", "#!lua\nreturn 1", "0"), "fcall": command("FCALL", "pz_rw", "0")}
        clients = {}
        for name, cmd in held.items():
            clients[name] = raw(proxy.port)
            clients[name].send(cmd)
        txn.send(command("EXEC"))
        assert wait_for(lambda: c.info("clients")["blocked_clients"] == len(held) + 1, 5)
        assert c.get("cc:p") is None
        assert c.eval("#!lua flags=no-writes\nreturn 'ro'", 0) == b"ro"
        assert c.evalsha(ro_sha, 0) == b"cached"
        assert c.execute_command("EVAL_RO", "return 'ro2'", 0) == b"ro2"
        assert c.fcall("pz_ro", 0) == b"ro"
        pipe = c.pipeline(transaction=True)
        assert pipe.get("cc:p").execute() == [None]    # a read-only transaction
        for name, client in list(clients.items()) + [("exec", txn)]:
            with pytest.raises(TimeoutError):            # still held
                client.recv_until(1, timeout=0.05)
    finally:
        assert c.execute_command("CLIENT", "UNPAUSE")
    for name, client in clients.items():
        assert client.recv_until(replies(1)), name
    assert txn.recv_until(replies(1)) == b"*1\r\n+OK\r\n"
    assert c.get("cc:p") == b"x" and c.get("cc:t") == b"1"
    assert c.info("clients")["blocked_clients"] == 0
    c.delete("cc:p", "cc:t", "cc:hll")
    c.function_delete("geproxy_pause")


def test_client_pause_inside_multi_runs_at_exec(proxy, c):
    """The proxy's own commands queue in a transaction and run at EXEC, their
    replies in their places (Redis's suite pauses this way)."""
    pipe = c.pipeline(transaction=True)
    pipe.set("cc:m", "1").execute_command("CLIENT", "PAUSE", 300, "WRITE").get("cc:m")
    pipe.execute_command("CLIENT", "GETNAME")
    assert pipe.execute() == [True, b"OK", b"1", None]
    start = time.time()
    assert c.set("cc:m", "2")                      # held by the pause EXEC started
    assert time.time() - start >= 0.2
    c.delete("cc:m")


def test_pause_all_ends_by_itself(proxy, c):
    assert c.execute_command("CLIENT", "PAUSE", 400)
    start = time.time()
    assert c.get("cc:nothing") is None
    assert 0.3 <= time.time() - start < 2


def test_unblock_timeout_and_error(proxy, c):
    for how, expect in (("TIMEOUT", None), ("ERROR", "UNBLOCKED")):
        blocked = redis.Redis(host=HOST, port=proxy.port, socket_timeout=10)
        bid = blocked.client_id()
        out = {}

        def run():
            try:
                out["reply"] = blocked.blpop("cc:never", 0)
            except redis.ResponseError as e:
                out["error"] = str(e)
        t = threading.Thread(target=run)
        t.start()
        assert wait_for(lambda: c.info("clients")["blocked_clients"] == 1, 3)
        assert c.execute_command("CLIENT", "UNBLOCK", bid, how) == 1
        t.join(5)
        if expect is None:
            assert out == {"reply": None}
        else:
            assert expect in out["error"]
        assert blocked.ping()   # the client goes on
        assert c.execute_command("CLIENT", "UNBLOCK", bid) == 0
        blocked.close()


def test_reply_off_skip_on(proxy):
    r = RawClient(proxy.port)
    r.send(b"CLIENT REPLY OFF\r\nSET cc:r 1\r\nGET cc:r\r\nCLIENT REPLY ON\r\nGET cc:r\r\n")
    assert r.recv_until(lambda b: b.count(b"\r\n") >= 3, 3) == b"+OK\r\n$1\r\n1\r\n"
    r.send(b"CLIENT REPLY SKIP\r\nPING\r\nECHO hi\r\n")
    assert r.recv_until(lambda b: b.endswith(b"hi\r\n"), 3) == b"$2\r\nhi\r\n"
    r.close()


def test_tracking_is_refused_clearly(c):
    with pytest.raises(redis.ResponseError, match="does not support CLIENT TRACKING"):
        c.execute_command("CLIENT", "TRACKING", "ON")


def test_other_clients_are_admin_business(make_proxy):
    p = make_proxy(extra_conf="[Authority]\n[[default]]\nMode = read\nKeyPrefix = pub.\n[[boss]]\nPassword = boss-pw\nMode = admin\n"
                              "[[app]]\nPassword = app-pw\nMode = write\nKeyPrefix = app.\n")
    boss = redis.Redis(host=HOST, port=p.port, password="boss-pw")
    app = redis.Redis(host=HOST, port=p.port, password="app-pw")
    app2 = redis.Redis(host=HOST, port=p.port, password="app-pw")
    app2.ping()
    mine = app.client_list()
    assert [int(x["id"]) for x in mine] == [app.client_id()] and mine[0]["user"] == "app"
    assert len(boss.client_list()) >= 3
    for args in (("KILL", "ID", app2.client_id()), ("PAUSE", 10), ("UNPAUSE",), ("UNBLOCK", app2.client_id())):
        with pytest.raises(redis.ResponseError, match="no permissions"):
            app.execute_command("CLIENT", *args)
    assert app.client_setname("mine") and app.client_getname() in ("mine", b"mine") and app.client_id()
    assert app.client_info()["name"] == "mine"
    assert boss.execute_command("CLIENT", "KILL", "USER", "app") == 2
    for c in (boss, app, app2):
        c.close()
