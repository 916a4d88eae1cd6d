"""Shared fixtures: one throwaway Redis Cluster per session and geproxy subprocesses on it.

The proxy always runs as a real subprocess (``python -m geproxy -c conf``) so tests
exercise exactly what users run, including config parsing and signal handling.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from geproxy.devcluster import DevCluster  # noqa: E402

HOST = '127.0.0.1'

TOP_DEFAULTS = {'Name': 'geproxy-test', 'Bind': None, 'WorkerProcesses': 1, 'ClientTimeout': 0}
POOL_DEFAULTS = {'MasterReadPriority': 100, 'RefreshInterval': 1, 'ServerTimeout': 1,
                 'ServerFailureLimit': 3, 'ServerRetryTimeout': 1}


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _render(d):
    """configobj lines; lists become comma lists, a None value drops the key."""
    return ''.join('%s = %s\n' % (k, ', '.join(map(str, v)) if isinstance(v, (list, tuple)) else v)
                   for k, v in d.items() if v is not None)


def render_config(cluster, port, top=None, pool=None, extra_conf=''):
    """Top-level keys must precede [ClusterServerPool]; extra_conf is appended verbatim
    at the end (so bare keys land in the pool section, or it can open new sections)."""
    t = dict(TOP_DEFAULTS, Bind='%s:%d' % (HOST, port))  # keeps Bind in second place
    t.update(top or {})
    p = dict(POOL_DEFAULTS, Servers=list(cluster.addrs))
    p.update(pool or {})
    text = _render(t) + '[ClusterServerPool]\n' + _render(p)
    return text + (extra_conf if extra_conf.endswith('\n') or not extra_conf else extra_conf + '\n')


def _tail(path, n=40):
    try:
        with open(path, errors='replace') as f:
            return ''.join(f.readlines()[-n:]) or '(empty log)\n'
    except OSError as e:
        return '(no log: %s)\n' % e


def ping(port, timeout=1.0):
    """True if a fresh connection to port answers PING with +PONG."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(b'PING\r\n')
            buf = b''
            while not buf.endswith(b'\r\n'):
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
            return buf == b'+PONG\r\n'
    except OSError:
        return False


def wait_for(pred, timeout=5.0, step=0.05):
    """Poll pred() until it is truthy; return its last value."""
    deadline = time.time() + timeout
    while True:
        v = pred()
        if v or time.time() > deadline:
            return v
        time.sleep(step)


class Proxy:
    """A running geproxy subprocess (see start_proxy)."""

    def __init__(self, port, proc, log_path, conf_path, tmpdir):
        self.port, self.proc, self.log_path = port, proc, log_path
        self.conf_path, self.tmpdir = conf_path, tmpdir

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        with open(self.log_path, errors='replace') as f:
            return f.read()

    def log_tail(self, n=40):
        return _tail(self.log_path, n)

    def stop(self, timeout=5):
        """SIGTERM, SIGKILL (whole process group: workers too) after `timeout`s; returns rc."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except OSError:
                    pass
                self.proc.wait()
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        return self.proc.returncode


def start_proxy(cluster, extra_conf='', port=None, top=None, pool=None, timeout=10, argv=None, text=None):
    """Write a config for `cluster` and start geproxy on it; wait until it answers PING.

    top/pool: dicts overriding top-level / [ClusterServerPool] keys (None removes a key).
    argv: command prefix, default [python, -m, geproxy] (tests may pass a stand-in).
    text: the whole configuration instead, a function of the port (other pools than a cluster).
    Raises RuntimeError with the log tail if the proxy exits or never answers.
    """
    port = port or free_port()
    tmpdir = tempfile.mkdtemp(prefix='geproxy-test-')
    conf_path = os.path.join(tmpdir, 'proxy.conf')
    log_path = os.path.join(tmpdir, 'proxy.log')
    with open(conf_path, 'w') as f:
        f.write(text(port) if text is not None else render_config(cluster, port, top, pool, extra_conf))
    env = dict(os.environ, PYTHONUNBUFFERED='1',
               PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get('PYTHONPATH')])))
    cmd = list(argv or [sys.executable, '-m', 'geproxy']) + ['-c', conf_path]
    with open(log_path, 'ab') as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    p = Proxy(port, proc, log_path, conf_path, tmpdir)
    deadline = time.time() + timeout
    while True:
        if proc.poll() is not None:
            why = 'exited with code %s' % proc.returncode
        elif ping(port):
            return p
        elif time.time() > deadline:
            why = 'did not answer PING on %s:%d within %ss' % (HOST, port, timeout)
        else:
            time.sleep(0.05)
            continue
        tail = p.log_tail()
        with open(conf_path) as f:
            conf = f.read()
        p.stop()
        raise RuntimeError('geproxy %s\ncommand: %s\n--- config ---\n%s--- log tail (%s) ---\n%s'
                           % (why, ' '.join(cmd), conf, log_path, tail))


class RawClient:
    """Byte-level client for protocol tests: nothing is parsed or buffered behind your back."""

    def __init__(self, port, timeout=5.0):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.buf = b''

    def send(self, data):
        self.sock.sendall(data)

    def recv_until(self, until, timeout=5.0):
        """Read until `until` (an int byte count, or a predicate on the buffer) is satisfied,
        return those bytes (all of the buffer for a predicate) and consume them.
        Raises TimeoutError / ConnectionError showing what arrived so far."""
        done = (lambda b: len(b) >= until) if isinstance(until, int) else until
        deadline = time.time() + timeout
        while not done(self.buf):
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError('recv_until timed out; got %r' % self.buf)
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise ConnectionError('connection closed; got %r' % self.buf)
            self.buf += chunk
        n = until if isinstance(until, int) else len(self.buf)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def wait_closed(self, timeout=5.0):
        """True if the peer closes the connection within timeout (data is discarded)."""
        try:
            self.recv_until(lambda b: False, timeout)
        except ConnectionError:
            return True
        except TimeoutError:
            return False

    def close(self):
        self.sock.close()


def resp_end(buf, pos=0):
    """Index just past one complete RESP2/RESP3 value at buf[pos:], or None if incomplete."""
    nl = buf.find(b'\r\n', pos)
    if nl < 0:
        return None
    t, head = buf[pos:pos + 1], buf[pos + 1:nl]
    if t in b'$=!' and head != b'?':
        n = int(head)
        return None if n >= 0 and len(buf) < nl + 4 + n else nl + 2 + (n + 2 if n >= 0 else 0)
    if t in b'*%~>|' and head != b'?':
        n, end = int(head) * (2 if t in b'%|' else 1), nl + 2
        for _ in range(max(n, 0)):
            end = resp_end(buf, end)
            if end is None:
                return None
        return end
    return nl + 2  # simple types: + - : _ , # (


def replies(n):
    """Predicate for recv_until: the buffer holds at least n complete RESP values."""
    def done(buf):
        end = 0
        for _ in range(n):
            end = resp_end(buf, end)
            if end is None:
                return False
        return True
    return done


@pytest.fixture(scope='session')
def cluster():
    dc = DevCluster()
    dc.start()
    yield dc
    dc.stop()


@pytest.fixture(scope='module')
def fc():
    """A 3+3 cluster of the module's own (node timeout 2 s), for tests that kill,
    stop or fail over nodes: the shared one stays whole for everyone else."""
    dc = DevCluster(node_timeout_ms=2000)
    dc.start()
    yield dc
    dc.stop()


@pytest.fixture(scope='session')
def proxy(cluster):
    p = start_proxy(cluster)
    yield p
    p.stop()


@pytest.fixture
def make_proxy(cluster):
    """start_proxy bound to the session cluster; every proxy started is stopped at teardown."""
    started = []

    def make(**kw):
        p = start_proxy(kw.pop('cluster', cluster), **kw)
        started.append(p)
        return p
    yield make
    for p in started:
        p.stop()


@pytest.fixture
def proxies(make_proxy):
    """start(cluster, **kw): like make_proxy, for a cluster other than the session's."""
    return lambda cluster, **kw: make_proxy(cluster=cluster, **kw)


@pytest.fixture
def r(proxy):
    import redis
    c = redis.Redis(host=HOST, port=proxy.port, protocol=2)
    yield c
    c.close()


@pytest.fixture
def r3(proxy):
    import redis
    c = redis.Redis(host=HOST, port=proxy.port, protocol=3)
    yield c
    c.close()


@pytest.fixture
def raw():
    """raw(port) -> RawClient; all are closed at teardown."""
    clients = []

    def make(port, timeout=5.0):
        clients.append(RawClient(port, timeout))
        return clients[-1]
    yield make
    for c in clients:
        c.close()
