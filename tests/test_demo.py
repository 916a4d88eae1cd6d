"""scripts/demo.sh as a newcomer runs it: it starts, serves, stops cleanly on
SIGTERM, and runs again right after."""

import os
import signal
import socket
import subprocess
import time

import redis

from conftest import ROOT, free_port
from geproxy.devcluster import free_ports


def port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: TIME_WAIT is fine
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def run_demo_once(ports, proxy_port, *args):
    env = dict(os.environ, GEPROXY_DEMO_PORTS=",".join(map(str, ports)),
               GEPROXY_DEMO_PROXY_PORT=str(proxy_port))
    proc = subprocess.Popen(["bash", "scripts/demo.sh", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    out = b""
    try:
        deadline = time.time() + 90
        while b"Press Ctrl-C" not in out:
            assert time.time() < deadline, out.decode(errors="replace")
            line = proc.stdout.readline()
            assert line or proc.poll() is None, out.decode(errors="replace")
            out += line
        assert b"redis-cli -p %d set a b" % proxy_port in out
        c = redis.Redis(port=proxy_port)
        assert c.set("demo:k", "v") and c.get("demo:k") == b"v"
        c.close()
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, out + rest


def test_demo_starts_serves_stops_and_runs_again():
    ports = free_ports(6)
    proxy_port = free_port()
    for _ in range(2):
        rc, out = run_demo_once(ports, proxy_port)
        assert rc == 143, out.decode(errors="replace")
        assert b"stopping" in out
        time.sleep(0.5)
        assert all(port_free(p) for p in ports + [proxy_port]), out.decode(errors="replace")


def test_demo_with_sentinel():
    """--sentinel: two groups and three Sentinels, geproxy's Sentinel pool in front;
    everything it started is gone after SIGTERM."""
    proxy_port = free_port()
    before = set(subprocess.run(["pgrep", "-f", "redis-"], capture_output=True, text=True).stdout.split())
    rc, out = run_demo_once([], proxy_port, "--sentinel")
    assert rc == 143, out.decode(errors="replace")
    assert b"sentinel setup: sentinels" in out
    time.sleep(0.5)
    left = set(subprocess.run(["pgrep", "-f", "redis-"], capture_output=True, text=True).stdout.split()) - before
    assert not left, out.decode(errors="replace")
    assert port_free(proxy_port)
