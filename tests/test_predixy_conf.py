"""Running geproxy on predixy's own brace-format files: predixy.conf with
Include of cluster.conf, auth.conf and latency.conf."""

import os
import subprocess
import sys

import pytest

from conftest import HOST, ROOT, RawClient, free_port
from opshelp import ask, bulk_text, call, fields, info, spawn, wait_for

PREDIXY = """\
# predixy.conf
## Specify a name for this predixy service
Name PredixyTest
Bind 127.0.0.1:{port}
WorkerThreads 1
MaxMemory 0
ClientTimeout 0
Log ./predixy.log
LogVerbSample 0
LogInfoSample 1

Include auth.conf
Include cluster.conf
Include latency.conf
"""

CLUSTER = """\
ClusterServerPool {{
    MasterReadPriority 100
    RefreshInterval 1
    ServerTimeout 1
    ServerFailureLimit 10
    ServerRetryTimeout 1
    Servers {{
{servers}
    }}
}}
"""

AUTH = """\
Authority {
    Auth {
        Mode read
    }
    Auth "#a complex password#" {
        Mode admin
    }
    Auth def {
        Mode write
        ReadKeyPrefix User Stats
        WriteKeyPrefix User
    }
}
"""

LATENCY = """\
LatencyMonitor all {
    Commands {
        + all
        - blpop
    }
    TimeSpan {
        + 100
        + 1000
    }
}
LatencyMonitor get {
    Commands {
        + get
    }
    TimeSpan {
        + 100
        + 500
        + 1000
    }
}
"""

SENTINEL = """\
SentinelServerPool {
    Sentinels {
        + 127.0.0.1:26379
    }
    Group shard001 {
    }
}
"""


def write_files(folder, cluster, port, **override):
    files = {'predixy.conf': PREDIXY.format(port=port), 'auth.conf': AUTH, 'latency.conf': LATENCY,
             'cluster.conf': CLUSTER.format(servers='\n'.join('        + %s' % a for a in cluster.addrs))}
    files.update(override)
    for name, text in files.items():
        with open(os.path.join(folder, name), 'w') as f:
            f.write(text)
    return os.path.join(folder, 'predixy.conf')


def check(conf):
    return subprocess.run([sys.executable, '-m', 'geproxy', '-t', '-c', conf], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)


@pytest.fixture(scope='module')
def p(cluster, tmp_path_factory):
    port = free_port()
    conf = write_files(str(tmp_path_factory.mktemp('predixy')), cluster, port)
    px = spawn(conf, port, ready=lambda r: r == b'+PONG\r\n')
    yield px
    px.stop()


def test_check_accepts_the_files(p):
    r = check(p.conf_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == 'geproxy: configuration %s is ok' % p.conf_path


def test_serves_with_the_name_and_bind(p):
    f = fields(info(p.port, 'proxy'))
    assert f['Name'] == 'PredixyTest' and f['Bind'] == '%s:%d' % (HOST, p.port)
    assert f['WorkerThreads'] == '1'
    assert call(p.port, 'CONFIG', 'GET', 'xx') .startswith(b'-NOPERM')   # read class before AUTH
    log = os.path.join(p.tmpdir, 'predixy.log')            # ./predixy.log: next to predixy.conf
    assert wait_for(lambda: os.path.exists(log) and 'listening on' in open(log).read())


def test_authority_from_auth_conf(p):
    c = RawClient(p.port)
    try:
        assert ask(c, 'GET', 'Other:p') == b'$-1\r\n'
        assert ask(c, 'SET', 'User:p', '1').startswith(b'-NOPERM')
        assert ask(c, 'AUTH', 'wrong').startswith(b'-WRONGPASS')
        assert ask(c, 'AUTH', 'def') == b'+OK\r\n'
        assert ask(c, 'SET', 'User:p', '1') == b'+OK\r\n'
        assert ask(c, 'SET', 'Stats:p', '1').startswith(b'-NOPERM')
        assert ask(c, 'GET', 'Stats:p') == b'$-1\r\n'
        assert ask(c, 'GET', 'Other:p').startswith(b'-NOPERM')
        assert ask(c, 'CONFIG', 'GET', 'maxmemory').startswith(b'-NOPERM')
        assert ask(c, 'AUTH', '#a complex password#') == b'+OK\r\n'
        assert ask(c, 'CONFIG', 'GET', 'MaxMemory') == b'*2\r\n$9\r\nMaxMemory\r\n$1\r\n0\r\n'
        assert ask(c, 'SET', 'Other:p', '1') == b'+OK\r\n'
    finally:
        c.close()


def test_latency_monitors_from_latency_conf(p):
    assert call(p.port, 'GET', 'User:lat') == b'$-1\r\n'
    text = info(p.port, 'LatencyMonitor')
    names = [l.split(':', 1)[1] for l in text.splitlines() if l.startswith('LatencyMonitorName:')]
    assert names == ['all', 'get']
    get = bulk_text(call(p.port, 'INFO', 'Latency', 'get'))
    total = [l for l in get.splitlines() if l.startswith('T ')]
    assert total and int(total[0].split()[-1]) >= 1
    for l in get.splitlines():
        if l.startswith('<='):
            assert int(l.split()[1]) in (100, 500, 1000)


@pytest.mark.parametrize('where', ['main', 'include'])
def test_two_pools_are_refused_in_one_line(cluster, tmp_path, where):
    """A cluster pool and a Sentinel pool in one file: a proxy serves one pool."""
    port = free_port()
    if where == 'main':
        conf = write_files(str(tmp_path), cluster, port,
                           **{'predixy.conf': PREDIXY.format(port=port) + SENTINEL})
    else:
        conf = write_files(str(tmp_path), cluster, port,
                           **{'predixy.conf': PREDIXY.format(port=port) + 'Include sentinel.conf\n',
                              'sentinel.conf': '# sentinels\n' + SENTINEL})
    r = check(conf)
    assert r.returncode != 0 and r.stdout == ''
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert 'SentinelServerPool' in lines[0] and 'ClusterServerPool' in lines[0] and conf in lines[0], lines[0]
    assert 'one pool' in lines[0]
    # and the proxy itself refuses to start on it
    run = subprocess.run([sys.executable, '-m', 'geproxy', '-c', conf], cwd=ROOT,
                         capture_output=True, text=True, timeout=30)
    assert run.returncode != 0 and 'SentinelServerPool' in run.stderr
