"""The test harness itself (conftest.start_proxy / RawClient), checked against stand-ins
so a broken proxy shows up as a clear error rather than a hang."""
import sys
import textwrap

import pytest
from configobj import ConfigObj

from conftest import replies, resp_end, start_proxy

# Answers every line with +PONG, like `redis-cli PING` would see from a proxy.
PONG_SERVER = textwrap.dedent('''
    import signal, socket, sys, threading
    conf = sys.argv[sys.argv.index('-c') + 1]
    bind = [l.split('=')[1].strip() for l in open(conf) if l.startswith('Bind')][0]
    host, port = bind.rsplit(':', 1)
    srv = socket.create_server((host, int(port)))
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(7))
    print('stand-in listening', flush=True)
    def serve(c):
        f = c.makefile('rb')
        for line in f:
            c.sendall(b'+PONG\\r\\n')
    while True:
        threading.Thread(target=serve, args=(srv.accept()[0],), daemon=True).start()
''')


@pytest.fixture
def stand_in(tmp_path):
    def make(code):
        path = tmp_path / 'stand_in.py'
        path.write_text(code)
        return [sys.executable, str(path)]
    return make


def test_config_rendering(cluster, stand_in):
    p = start_proxy(cluster, argv=stand_in(PONG_SERVER), top={'WorkerProcesses': 2},
                    pool={'MasterReadPriority': 0, 'ServerTimeout': None},
                    extra_conf='Extra = yes')
    try:
        conf = ConfigObj(p.conf_path)
        assert conf['Bind'] == '127.0.0.1:%d' % p.port
        assert conf['WorkerProcesses'] == '2' and conf['ClientTimeout'] == '0'
        pool = conf['ClusterServerPool']
        assert pool['Servers'] == cluster.addrs
        assert pool['MasterReadPriority'] == '0' and pool['Extra'] == 'yes'
        assert 'ServerTimeout' not in pool
    finally:
        assert p.stop() == 7  # got SIGTERM, exited by itself


def test_raw_client(cluster, stand_in, raw):
    p = start_proxy(cluster, argv=stand_in(PONG_SERVER))
    try:
        c = raw(p.port)
        c.send(b'PING\r\nPING\r\n')
        assert c.recv_until(replies(2)) == b'+PONG\r\n+PONG\r\n'
        c.send(b'PING\r\n')
        assert c.recv_until(3) == b'+PO'
        assert c.recv_until(4) == b'NG\r\n'
        with pytest.raises(TimeoutError):
            c.recv_until(1, timeout=0.2)
        assert 'stand-in listening' in p.log()
    finally:
        p.stop()
    assert c.wait_closed(2)


def test_exit_is_reported_with_log_tail(cluster, stand_in):
    code = 'import sys; print("boom: bad config"); sys.exit(3)'
    with pytest.raises(RuntimeError) as e:
        start_proxy(cluster, argv=stand_in(code))
    assert 'exited with code 3' in str(e.value) and 'boom: bad config' in str(e.value)
    assert '[ClusterServerPool]' in str(e.value)


def test_silence_is_reported_and_killed(cluster, stand_in):
    code = 'import time; print("sleeping", flush=True); time.sleep(60)'
    with pytest.raises(RuntimeError) as e:
        start_proxy(cluster, argv=stand_in(code), timeout=1)
    assert 'did not answer PING' in str(e.value) and 'sleeping' in str(e.value)


def test_resp_end():
    assert resp_end(b'+OK\r\n') == 5
    assert resp_end(b'$3\r\nfoo\r\n') == 9 and resp_end(b'$3\r\nfo') is None
    assert resp_end(b'$-1\r\n') == 5 and resp_end(b'*-1\r\n') == 5
    assert resp_end(b'*2\r\n:1\r\n$1\r\na\r\n+x') == 15
    assert resp_end(b'%1\r\n+a\r\n_\r\n') == 11 and resp_end(b'%1\r\n+a\r\n') is None
    assert not replies(2)(b'+OK\r\n') and replies(2)(b'+OK\r\n-ERR x\r\n')
