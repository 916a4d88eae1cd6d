"""One client's requests in flight are bounded (ClientMaxInflight, ClientMaxInflightBytes).

A client that pipelines thousands of GETs of a big value and never reads must
cost the node and the proxy a bounded amount, not every reply at once; the
other clients of the same node keep their speed; the memory comes back when it
leaves.  A client that reads keeps the speed of a deep pipeline.

Bounds asserted (documented in the README's settings reference):
- the node's output buffers for the proxy's connections (CLIENT LIST omem)
  stay under 64 MiB (5,000 x 100 KB = 500 MB if all were sent at once);
- the proxy's RSS grows by less than 128 MiB, and is back within 20 MiB of
  where it started once the client is gone (without malloc_trim: +28 MiB);
- the worst GET latency of another client of the same node stays under 300 ms.
"""

import socket
import threading
import time

import psutil

from conftest import HOST, RawClient, replies
from geproxy.resp import command


def ask(port, *args, timeout=10.0):
    """One command on a new connection; the raw reply."""
    c = RawClient(port, timeout=timeout)
    try:
        c.send(command(*args))
        return c.recv_until(replies(1), timeout=timeout)
    finally:
        c.close()

MiB = 1 << 20
KEY = b"{inflight}big"
VALUE = b"v" * 100_000


def node_of(cluster, key):
    """The port of the master owning `key`, asked of the cluster itself."""
    c = cluster.client(cluster.masters()[0])
    slot = c.execute_command("CLUSTER", "KEYSLOT", key)
    try:
        return next(int(m[1]) for first, last, m, *_ in c.execute_command("CLUSTER", "SLOTS")
                    if first <= slot <= last)
    finally:
        c.close()


def worst_omem(client):
    """The largest output buffer the node holds for any of its connections."""
    return max(int(c.get("omem", 0)) for c in client.client_list())


def test_client_that_never_reads_costs_a_bounded_amount(proxy, cluster):
    import redis
    node = redis.Redis(host=HOST, port=node_of(cluster, KEY))
    assert ask(proxy.port, "SET", KEY, VALUE, timeout=10) == b"+OK\r\n"
    assert ask(proxy.port, "SET", b"{inflight}small", b"s") == b"+OK\r\n"
    proc = psutil.Process(proxy.proc.pid)
    rss0 = proc.memory_info().rss
    peak = {"rss": rss0, "omem": 0}
    latencies, errors = [], []
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak["rss"] = max(peak["rss"], proc.memory_info().rss)
            peak["omem"] = max(peak["omem"], worst_omem(node))
            time.sleep(0.02)

    def victim():
        c = RawClient(proxy.port, timeout=10)
        try:
            while not done.is_set():
                t = time.time()
                c.send(command("GET", b"{inflight}small"))
                got = c.recv_until(replies(1))
                latencies.append(time.time() - t)
                if got != b"$1\r\ns\r\n":
                    errors.append(got[:80])
                time.sleep(0.005)
        except Exception as e:
            errors.append(repr(e))
        finally:
            c.close()

    hog = socket.socket()
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)   # and it never reads
    hog.connect((HOST, proxy.port))
    threads = [threading.Thread(target=f, daemon=True) for f in (sample, victim, victim)]
    for th in threads:
        th.start()
    try:
        hog.settimeout(2)
        try:
            hog.sendall(command("GET", KEY) * 5000)
        except OSError:     # the proxy stopped reading it: that is the point
            pass
        time.sleep(4)
        held = peak["rss"]
    finally:
        hog.close()
        time.sleep(2)
        done.set()
        for th in threads:
            th.join(10)
        node.close()
    rss_after = proc.memory_info().rss
    print("never-reading client: node omem peak %d MiB, proxy RSS %d -> peak %d -> after %d MiB, "
          "victim GET worst %.3fs over %d" % (peak["omem"] // MiB, rss0 // MiB, held // MiB, rss_after // MiB,
                                              max(latencies or [0]), len(latencies)))
    assert not errors, errors[:3]
    assert peak["omem"] < 64 * MiB, "the node buffered %d MiB for the proxy" % (peak["omem"] // MiB)
    assert held - rss0 < 128 * MiB, "the proxy grew by %d MiB" % ((held - rss0) // MiB)
    assert rss_after - rss0 < 20 * MiB, "the proxy kept %d MiB after the client left" % ((rss_after - rss0) // MiB)
    assert latencies and max(latencies) < 0.3, "another client waited %.3fs" % max(latencies)


def test_deep_pipeline_from_a_reading_client_is_answered_whole(proxy):
    """20,000 commands in one write, more than ClientMaxInflight: all answered, in order."""
    c = RawClient(proxy.port, timeout=30)
    n = 20000
    data = b"".join(command("SET", b"{inflight}p%d" % (i % 100), b"%d" % i) + command("GET", b"{inflight}p%d" % (i % 100))
                    for i in range(n // 2))
    sender = threading.Thread(target=c.send, args=(data,), daemon=True)
    sender.start()
    want = b"".join(b"+OK\r\n$%d\r\n%d\r\n" % (len(b"%d" % i), i) for i in range(n // 2))
    got = c.recv_until(len(want), timeout=60)
    sender.join(10)
    assert got == want
    c.close()


def test_inflight_settings_are_online(proxy):
    assert ask(proxy.port, "CONFIG", "SET", "ClientMaxInflight", "3") == b"+OK\r\n"
    try:
        c = RawClient(proxy.port)
        c.send(b"".join(command("ECHO", "e%d" % i) for i in range(50)))
        assert c.recv_until(replies(50)) == b"".join(b"$%d\r\ne%d\r\n" % (len(b"e%d" % i), i) for i in range(50))
        c.close()
    finally:
        assert ask(proxy.port, "CONFIG", "SET", "ClientMaxInflight", "1024") == b"+OK\r\n"
