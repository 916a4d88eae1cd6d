"""etc/supervisord.conf runs geproxy under the real supervisor: start, stop, restart."""

import os
import re
import shutil
import subprocess
import sys

import pytest
import redis

from conftest import ROOT, free_port, ping, render_config, wait_for

BIN = os.path.dirname(sys.executable)


def ctl(conf, *args):
    return subprocess.run([os.path.join(BIN, "supervisorctl"), "-c", conf] + list(args),
                          capture_output=True, text=True, timeout=30)




@pytest.fixture
def supervised(cluster, tmp_path):
    if not os.path.exists(os.path.join(BIN, "supervisord")):
        pytest.fail("supervisor is a test dependency (requirements-test.txt)")
    port = free_port()
    (tmp_path / "proxy.conf").write_text(render_config(cluster, port))
    text = open(os.path.join(ROOT, "etc", "supervisord.conf")).read()
    text = text.replace("/tmp/geproxy-", str(tmp_path) + "/geproxy-")
    text = re.sub(r"(?m)^command=.*$", "command=%s -m geproxy -c %s/proxy.conf" % (sys.executable, tmp_path), text)
    text = re.sub(r"(?m)^directory=.*$", "directory=%s" % ROOT, text)
    conf = tmp_path / "supervisord.conf"
    conf.write_text(text)
    env = dict(os.environ, PYTHONPATH=ROOT)
    subprocess.run([os.path.join(BIN, "supervisord"), "-c", str(conf)], check=True, env=env, timeout=30)
    yield str(conf), port
    ctl(str(conf), "shutdown")
    pid_file = tmp_path / "geproxy-supervisord.pid"
    wait_for(lambda: not pid_file.exists(), 15)
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_start_stop_restart(supervised):
    conf, port = supervised
    assert wait_for(lambda: ping(port)), ctl(conf, "status").stdout
    assert wait_for(lambda: "RUNNING" in ctl(conf, "status", "geproxy").stdout)  # after startsecs
    assert redis.Redis(port=port).set("sup:k", "v")
    out = ctl(conf, "stop", "geproxy")
    assert "stopped" in out.stdout, out.stdout + out.stderr
    assert not ping(port)
    assert "STOPPED" in ctl(conf, "status", "geproxy").stdout
    ctl(conf, "start", "geproxy")
    assert wait_for(lambda: ping(port))
    pid_before = ctl(conf, "pid", "geproxy").stdout.strip()
    ctl(conf, "restart", "geproxy")
    assert wait_for(lambda: ping(port))
    assert ctl(conf, "pid", "geproxy").stdout.strip() != pid_before
    assert redis.Redis(port=port).get("sup:k") == b"v"
