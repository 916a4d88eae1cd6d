"""Several geproxies behind HAProxy (etc/haproxy.cfg): kill one, clients keep working."""

import os
import re
import shutil
import signal
import subprocess
import time

import pytest
import redis

from conftest import ROOT, free_port


@pytest.fixture
def haproxy(make_proxy, tmp_path):
    exe = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not os.path.exists(exe):
        pytest.fail("haproxy is installed by scripts/test.sh (Debian package haproxy)")
    a, b = make_proxy(), make_proxy()
    front = free_port()
    text = open(os.path.join(ROOT, "etc", "haproxy.cfg")).read()
    text = text.replace("bind 127.0.0.1:6380", "bind 127.0.0.1:%d" % front)
    text = re.sub(r"127\.0\.0\.1:7617", "127.0.0.1:%d" % a.port, text)
    text = re.sub(r"127\.0\.0\.1:7618", "127.0.0.1:%d" % b.port, text)
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(text)
    proc = subprocess.Popen([exe, "-f", str(cfg), "-db"], stdout=open(tmp_path / "haproxy.log", "w"), stderr=subprocess.STDOUT)
    yield front, a, b
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_clients_survive_losing_one_geproxy(haproxy):
    front, a, b = haproxy
    c = redis.Redis(host="127.0.0.1", port=front, socket_timeout=2, retry_on_error=[redis.ConnectionError])
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            if c.ping():
                break
        except redis.ConnectionError:
            time.sleep(0.2)
    assert c.set("ha:k", "1")
    held = [redis.Redis(host="127.0.0.1", port=front) for _ in range(4)]
    names = {x.execute_command("CLIENT", "INFO").split(b"laddr=")[1].split(b" ")[0] for x in held}
    assert len(names) == 2  # both geproxies serve (leastconn over held connections)
    for x in held:
        x.close()
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait()
    errors, ok = 0, 0
    t = time.time()
    while time.time() - t < 4:
        try:
            c.incr("ha:n")
            ok += 1
        except (redis.ConnectionError, redis.TimeoutError):
            errors += 1
            time.sleep(0.05)
    assert ok > 100, (ok, errors)
    late = redis.Redis(host="127.0.0.1", port=front, socket_timeout=2)
    for _ in range(20):  # after the health check: every new client is served
        assert late.get("ha:k") == b"1"
        late.close()
