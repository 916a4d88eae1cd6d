"""Hostile and careless clients against one proxy on the shared cluster: random
bytes, thousands of connections, absurd and negative lengths, huge pipelines,
clients that vanish mid-pipeline or never read.  Afterwards the proxy must
serve as before and give back what those clients held (greenlets, backend
connections, client count).

Keys use the prefix `hostile:`; everything goes to 127.0.0.1, bounded in count
and time.  The tests share one proxy and run in file order; the last one is the
leak check.
"""

import random
import resource
import socket
import threading
import time

import psutil
import pytest

from conftest import HOST, RawClient, replies, start_proxy
from geproxy.resp import command
from geproxy.slots import key_slot

WANT_CONNS = 2000
MiB = 1 << 20


def _raise_nofile(need):
    """Raise the soft fd limit of this process (and so of proxies it starts) to
    `need` if the hard limit allows; return how many connections we may open."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def _conns_possible():
    soft = _raise_nofile(2 * WANT_CONNS + 512)   # our ends and the proxy's (it inherits the limit)
    return min(WANT_CONNS, (soft - 512) // 2)


MAX_CONNS = _conns_possible()


def info(port, section):
    c = RawClient(port)
    try:
        c.send(command("INFO", section))
        reply = c.recv_until(replies(1))
    finally:
        c.close()
    body = reply[reply.index(b"\r\n") + 2:-2].decode()
    out = {}
    for line in body.splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out.setdefault(k, v)
    return out


def counters(port):
    d = dict(info(port, "SystemResource"))
    d.update(info(port, "Stats"))
    return {k: int(d[k]) for k in ("Greenlets", "BackendConnections", "ClientConnections")}


def ask(port, *args, timeout=5.0):
    c = RawClient(port, timeout)
    try:
        c.send(command(*args))
        return c.recv_until(replies(1), timeout)
    finally:
        c.close()


def masters_of(cluster):
    owners = [None] * 16384
    c = cluster.client(cluster.masters()[0])
    for first, last, master, *_ in c.execute_command("CLUSTER", "SLOTS"):
        owners[first:last + 1] = [int(master[1])] * (last - first + 1)
    c.close()
    return owners


@pytest.fixture(scope="module")
def hp(cluster):
    """The proxy all tests here share, with its warmed-up baseline counters.
    ServerTimeout 5: a 1M-member SADD may take Redis over a second on a busy machine."""
    p = start_proxy(cluster, pool={"ServerTimeout": 5})
    for i in range(30):                  # a link to every master
        assert ask(p.port, "SET", "hostile:warm:%d" % i, "x") == b"+OK\r\n"
    time.sleep(0.3)
    p.baseline = counters(p.port)
    yield p
    p.stop()


def assert_serves(p):
    assert ask(p.port, "PING") == b"+PONG\r\n", p.log_tail(20)
    assert ask(p.port, "SET", "hostile:alive", "1") == b"+OK\r\n"
    assert ask(p.port, "GET", "hostile:alive") == b"$1\r\n1\r\n"


def test_random_bytes_then_close(hp):
    rnd = random.Random(20240611)
    for batch in range(10):
        socks = []
        for _ in range(200):
            s = socket.create_connection((HOST, hp.port), timeout=5)
            s.sendall(bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 400))))
            socks.append(s)
        for s in socks:
            s.close()
        assert ask(hp.port, "PING") == b"+PONG\r\n", "after batch %d\n%s" % (batch, hp.log_tail(20))
    assert hp.proc.poll() is None
    assert_serves(hp)


def test_many_concurrent_connections(hp):
    n = MAX_CONNS
    if n < WANT_CONNS:
        print("fd limit: scaled down to %d concurrent connections" % n)
    socks = []
    try:
        for _ in range(n):
            socks.append(socket.create_connection((HOST, hp.port), timeout=10))
        for s in socks:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
        for i, s in enumerate(socks):
            buf = b""
            while len(buf) < 7:
                chunk = s.recv(64)
                assert chunk, "connection %d closed" % i
                buf += chunk
            assert buf == b"+PONG\r\n", (i, buf)
        assert counters(hp.port)["ClientConnections"] >= n + 1
        assert_serves(hp)
    finally:
        for s in socks:
            s.close()


def _exchange(port, data, timeout=2.0):
    """Send data; return (everything received, whether the peer closed) after
    the peer closes or `timeout` passes without data."""
    s = socket.create_connection((HOST, port), timeout=timeout)
    try:
        s.sendall(data)
        buf = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                return buf, False
            except ConnectionResetError:
                return buf, True
            if not chunk:
                return buf, True
            buf += chunk
    finally:
        s.close()


@pytest.mark.parametrize("data, expect", [
    (b"*1\r\n$2147483648\r\n", (b"-ERR Protocol error: invalid bulk length\r\n", True)),
    (b"*-5\r\n*1\r\n$4\r\nPING\r\n", (b"+PONG\r\n", False)),           # ignored, as Redis does
    (b"*1\r\n$-7\r\n", (b"-ERR Protocol error: invalid bulk length\r\n", True)),
    (b"*2\r\n$3\r\nGET\r\n$-1\r\n", (b"-ERR Protocol error: invalid bulk length\r\n", True)),
], ids=["bulk-2GiB", "count-negative", "bulk-negative", "bulk-null"])
def test_absurd_and_negative_lengths(hp, cluster, data, expect):
    rss0 = psutil.Process(hp.proc.pid).memory_info().rss
    got = _exchange(hp.port, data, timeout=0.5)
    direct = _exchange(cluster.masters()[0], data, timeout=0.5)   # Redis itself, for reference
    assert got == expect, "proxy %r, Redis %r" % (got, direct)
    assert direct == expect, "Redis itself answers %r" % (direct,)
    assert psutil.Process(hp.proc.pid).memory_info().rss - rss0 < 50 * MiB   # nothing preallocated
    assert_serves(hp)


def _wait_answering(port, timeout=15.0):
    c = RawClient(port, timeout)
    try:
        c.send(command("PING"))
        return c.recv_until(replies(1), timeout)
    finally:
        c.close()


@pytest.mark.parametrize("data", [
    b"*2147483648\r\n",                          # one 14-byte header
    b"*9999999\r\n" * 200,                       # 2,000 bytes: 7-digit counts, nested
    b"*1\r\n" + b">99999999\r\n" * 3,             # 37 bytes: RESP3 push headers inside a command
    b"*1\r\n|2147483647\r\n",                    # 18 bytes: a RESP3 attribute header
], ids=["count-2G", "nested-counts-10M", "nested-push-100M", "attribute-2G"])
def test_huge_multibulk_count_does_not_freeze_the_proxy(hp, cluster, data):
    """Array headers with huge counts must cost the proxy nothing but an error for
    that one client, as in Redis (which answers at once)."""
    direct = _exchange(cluster.masters()[0], data, timeout=1.0)
    assert direct[0].startswith(b"-ERR Protocol error: ") and direct[1], direct
    bystander = RawClient(hp.port, timeout=15)
    out = {}

    def hostile():
        t = time.time()
        out["got"] = _exchange(hp.port, data, timeout=15.0)
        out["took"] = time.time() - t

    th = threading.Thread(target=hostile, daemon=True)
    try:
        th.start()
        time.sleep(0.2)                   # the header is in; now another client asks
        t = time.time()
        bystander.send(command("PING"))
        pong = bystander.recv_until(replies(1), timeout=15)
        pong_took = time.time() - t
        th.join(20)
    finally:
        bystander.close()
        _wait_answering(hp.port)               # let the proxy come back before the next test
    print("%r...: answered %r after %.2fs; a PING from another client meanwhile took %.2fs"
          % (data[:14], out.get("got"), out.get("took", -1), pong_took))
    got, closed = out["got"]
    assert got.startswith(b"-ERR Protocol error: ") and closed, (out, "Redis: %r" % (direct,))
    assert pong == b"+PONG\r\n"
    assert out["took"] < 0.5 and pong_took < 0.5, \
        "%d bytes of array headers froze the proxy: the error came after %.2fs, another client's PING " \
        "waited %.2fs" % (len(data), out["took"], pong_took)


def test_argument_count_limit_matches_redis(hp, cluster):
    """A legal command with more than 1024*1024 arguments (Redis 7 takes counts up
    to INT_MAX): the proxy must not refuse what the cluster behind it accepts."""
    key = "hostile:bigset"
    n = 1024 * 1024 + 10                  # members; the command has n + 2 arguments
    body = b"".join(b"$7\r\n%07d\r\n" % i for i in range(n))
    data = b"*%d\r\n$4\r\nSADD\r\n$%d\r\n%s\r\n" % (n + 2, len(key), key.encode()) + body
    owners = masters_of(cluster)
    direct = RawClient(owners[key_slot(key.encode())], timeout=30)
    try:
        direct.send(data)
        assert direct.recv_until(replies(1), timeout=30) == b":%d\r\n" % n    # Redis takes it
        direct.send(command("DEL", key))
        direct.recv_until(replies(1))
    finally:
        direct.close()
    c = RawClient(hp.port, timeout=30)

    def send():
        try:
            c.send(data)
        except OSError:
            pass                          # refused and closed while we were still sending

    th = threading.Thread(target=send, daemon=True)
    th.start()
    try:
        got = c.recv_until(replies(1), timeout=30)
    except (ConnectionError, OSError):
        got = c.buf or b"(closed, nothing received)"
    finally:
        th.join(30)
        c.close()
        ask(hp.port, "DEL", key)
    assert got == b":%d\r\n" % n, "Redis takes a %d-argument SADD, the proxy answers %r" % (n + 2, got[:100])
    assert_serves(hp)


def test_ten_thousand_command_pipeline(hp):
    n = 10000
    for k in ["hostile:pipe:c%d" % i for i in range(7)] + ["hostile:pipe:k%d" % i for i in range(37)]:
        assert ask(hp.port, "DEL", k)[:1] == b":"        # fresh keys: GETs before a SET are nil
    model, cmds, want = {}, [], []
    for i in range(n):
        k, ctr = "hostile:pipe:k%d" % (i % 37), "hostile:pipe:c%d" % (i % 7)
        op = i % 4
        if op == 0:
            cmds.append(command("SET", k, "v%d" % i))
            model[k] = b"v%d" % i
            want.append(b"+OK\r\n")
        elif op == 1:
            cmds.append(command("GET", k))
            v = model.get(k)
            want.append(b"$-1\r\n" if v is None else b"$%d\r\n%s\r\n" % (len(v), v))
        elif op == 2:
            cmds.append(command("INCR", ctr))
            model[ctr] = model.get(ctr, 0) + 1
            want.append(b":%d\r\n" % model[ctr])
        else:
            cmds.append(command("ECHO", "e%d" % i))       # answered by the proxy itself
            want.append(b"$%d\r\ne%d\r\n" % (len(b"e%d" % i), i))
    c = RawClient(hp.port, timeout=20)
    data = b"".join(cmds)
    sender = threading.Thread(target=c.send, args=(data,), daemon=True)   # one write, read meanwhile
    t = time.time()
    sender.start()
    got = c.recv_until(len(b"".join(want)), timeout=20)
    sender.join(5)
    print("10,000-command pipeline (%d bytes) answered in %.2fs" % (len(data), time.time() - t))
    expected = b"".join(want)
    if got != expected:
        pos, i = 0, 0
        for i, w in enumerate(want):
            if got[pos:pos + len(w)] != w:
                break
            pos += len(w)
        pytest.fail("reply %d differs: want %r, got %r" % (i, want[i], got[pos:pos + 60]))
    c.close()
    assert_serves(hp)


def test_clients_closing_mid_pipeline(hp):
    errors = []

    def one(j):
        try:
            s = socket.create_connection((HOST, hp.port), timeout=5)
            s.sendall(b"".join(command("SET", "hostile:mid:%d:%d" % (j, i % 50), i) if i % 2 else
                               command("GET", "hostile:mid:%d:%d" % (j, i % 50)) for i in range(5000)))
            s.close()
        except OSError as e:
            errors.append(repr(e))

    threads = [threading.Thread(target=one, args=(j,), daemon=True) for j in range(20)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(20)
    assert not errors, errors[:3]
    assert hp.proc.poll() is None
    assert_serves(hp)


def test_slow_reader_of_big_values(hp, cluster):
    """ClientOutputLimit 4M, below what ClientMaxInflightBytes lets a client have in
    flight (16 x 1 MiB): the client that does not read is closed at twice the limit."""
    assert ask(hp.port, "CONFIG", "SET", "ClientOutputLimit", "4M") == b"+OK\r\n"
    try:
        _slow_reader_of_big_values(hp, cluster)
    finally:
        assert ask(hp.port, "CONFIG", "SET", "ClientOutputLimit", "64M") == b"+OK\r\n"


def _slow_reader_of_big_values(hp, cluster):
    owners = masters_of(cluster)
    big_key = "hostile:big"
    assert ask(hp.port, "SET", big_key, b"x" * MiB, timeout=10) == b"+OK\r\n"
    big_owner = owners[key_slot(big_key.encode())]
    other_keys = []
    i = 0
    while len(other_keys) < 5:
        k = "hostile:small:%d" % i
        i += 1
        if owners[key_slot(k.encode())] != big_owner:
            other_keys.append(k)
            assert ask(hp.port, "SET", k, "s") == b"+OK\r\n"
    same_key = next("hostile:same:%d" % j for j in range(10000)
                    if owners[key_slot(b"hostile:same:%d" % j)] == big_owner)
    assert ask(hp.port, "SET", same_key, "s") == b"+OK\r\n"

    proc = psutil.Process(hp.proc.pid)
    rss0 = proc.memory_info().rss
    peak = [rss0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            try:
                peak[0] = max(peak[0], proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.01)

    lat = {"other": [], "same": []}
    errs = []

    def others(name, keys):
        """Another client, reading and writing normally, one GET at a time."""
        c = RawClient(hp.port, timeout=10)
        try:
            while not done.is_set():
                t = time.time()
                c.send(command("GET", random.choice(keys)))
                r = c.recv_until(replies(1), timeout=10)
                lat[name].append(time.time() - t)
                if r != b"$1\r\ns\r\n":
                    errs.append((name, r[:100]))
                time.sleep(0.005)
        except (OSError, TimeoutError, ConnectionError) as e:
            errs.append((name, repr(e)))
        finally:
            c.close()

    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)   # and it never reads
    slow.settimeout(5)
    slow.connect((HOST, hp.port))
    n_gets = 400                      # 400 MiB of replies if they were all kept
    threads = [threading.Thread(target=sample, daemon=True),
               threading.Thread(target=others, args=("other", other_keys), daemon=True),
               threading.Thread(target=others, args=("same", [same_key]), daemon=True)]
    for th in threads:
        th.start()
    try:
        try:
            slow.sendall(command("GET", big_key) * n_gets)
        except OSError:
            pass
        t = time.time()
        closed = False
        while time.time() - t < 15:
            if "replies unread" in hp.log():
                closed = True
                break
            time.sleep(0.1)
        closed_after = time.time() - t
        time.sleep(0.5)
    finally:
        done.set()
        for th in threads:
            th.join(15)
        slow.close()
        ask(hp.port, "DEL", big_key, timeout=15)
    print("slow reader: RSS %d -> peak %d MiB; closed after %.1fs; other-master GET max %.3fs, "
          "same-master GET max %.3fs" % (rss0 // MiB, peak[0] // MiB, closed_after,
                                          max(lat["other"] or [0]), max(lat["same"] or [0])))
    lines = [l for l in hp.log().splitlines() if "replies unread" in l]
    assert closed, "the proxy never closed the client that does not read (or never said why)\n" + hp.log_tail(20)
    print("proxy log:", lines[-1])
    assert not errs, errs[:5]
    problems = []
    if peak[0] >= 400 * MiB:
        problems.append("proxy RSS peaked at %d MiB (from %d MiB; ClientOutputLimit 4M)"
                        % (peak[0] // MiB, rss0 // MiB))
    if not lat["other"] or max(lat["other"]) >= 0.5:
        problems.append("a client of another master stalled %.2fs" % max(lat["other"] or [-1]))
    if not lat["same"] or max(lat["same"]) >= 5.0:
        problems.append("a client of the same master stalled %.2fs" % max(lat["same"] or [-1]))
    assert not problems, "; ".join(problems) + "\n" + lines[-1]
    assert_serves(hp)


def test_proxy_recovers_its_baseline(hp):
    """Run last: after all of the above the proxy serves as before and holds no
    more greenlets, backend connections or clients than when it started."""
    assert hp.proc.poll() is None
    assert_serves(hp)
    base = hp.baseline
    deadline = time.time() + 8
    while True:
        now = counters(hp.port)
        ok = (now["Greenlets"] <= base["Greenlets"] + 5
              and now["BackendConnections"] <= base["BackendConnections"] + 1
              and now["ClientConnections"] == base["ClientConnections"])
        if ok or time.time() > deadline:
            break
        time.sleep(0.2)
    print("baseline %s, now %s" % (base, now))
    assert ok, "baseline %s, now %s\n%s" % (base, now, hp.log_tail(20))
    assert psutil.Process(hp.proc.pid).memory_info().rss < 400 * MiB
