"""Graceful stop: on SIGTERM the proxy stops accepting and reading, answers
every command it already sent to a node, then closes (GracefulTimeout).  Ten
clients pipeline INCR on counters of their own; after SIGTERM each must have
received exactly as many replies as Redis ran INCRs for it."""

import signal
import socket
import threading
import time

import pytest

from conftest import HOST
from geproxy.resp import command


def pipeliner(port, key, out, started):
    """INCR `key` in pipelines of 50 until the proxy closes; count whole replies."""
    s = socket.create_connection((HOST, port), timeout=30)
    got = 0
    buf = b""
    batch = command("INCR", key) * 50
    sent = 0
    started.set()
    try:
        while True:
            if sent - got < 200:      # keep up to 200 in flight
                try:
                    s.sendall(batch)
                    sent += 50
                except OSError:
                    pass
            data = s.recv(65536)
            if not data:
                break
            buf += data
            lines = buf.count(b"\r\n")
            got += lines
            buf = buf[buf.rindex(b"\r\n") + 2:] if lines else buf
    except OSError:
        pass
    finally:
        s.close()
    out[key] = got


@pytest.mark.parametrize("workers,runs", [(1, 10), (2, 3)])
def test_sigterm_answers_every_command_redis_ran(make_proxy, cluster, workers, runs):
    from redis.cluster import RedisCluster
    rc = RedisCluster(host=HOST, port=cluster.ports[0])
    try:
        for run in range(runs):
            p = make_proxy(top={"WorkerProcesses": workers})
            keys = ["shutdown:%d:%d:%d" % (workers, run, i) for i in range(10)]
            for k in keys:
                rc.delete(k)
            got, threads, started = {}, [], []
            for k in keys:
                ev = threading.Event()
                started.append(ev)
                threads.append(threading.Thread(target=pipeliner, args=(p.port, k, got, ev), daemon=True))
                threads[-1].start()
            for ev in started:
                assert ev.wait(10)
            time.sleep(0.5)
            p.proc.send_signal(signal.SIGTERM)
            p.proc.wait(40)
            for th in threads:
                th.join(30)
            ran = {k: int(rc.get(k) or 0) for k in keys}
            assert sum(ran.values()) > 0, "no INCR ran before the stop"
            assert got == ran, "replies received != INCRs Redis ran (run %d): %r" % (
                run, {k: (got.get(k), ran[k]) for k in keys if got.get(k) != ran[k]})
            assert "replies still due" not in p.log()
    finally:
        rc.close()
