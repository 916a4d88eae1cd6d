"""Throwaway local Redis Cluster (3 masters + 3 replicas) for demos, benchmarks and tests.

Stdlib only (a tiny RESP socket helper instead of redis-py), so the demo needs no
test dependencies.  CLI: ``python -m geproxy.devcluster [--ports 7000-7005] [--dir DIR]``.

TLS mode (``DevCluster(tls=files)``): every node listens on TLS only (``port 0``,
``tls-port``), the bus and replication speak TLS too, so what the nodes announce
are TLS ports; ``files`` names the CA and the node certificate, which also
serves as the client certificate of ``command()`` and ``client()``.
"""
import argparse
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

NSLOTS = 16384


def _resp_read(f):
    """Parse one RESP2 reply from a buffered socket file; -ERR comes back as an exception."""
    line = f.readline()
    if not line.endswith(b'\r\n'):
        raise ConnectionError('connection closed')
    t, rest = line[:1], line[1:-2]
    if t in (b'+', b'-'):
        return rest.decode() if t == b'+' else RuntimeError(rest.decode())
    n = int(rest)
    if t == b':' or n < 0:
        return n if t == b':' else None
    return f.read(n + 2)[:-2].decode() if t == b'$' else [_resp_read(f) for _ in range(n)]


def command(host, port, *args, timeout=3.0, tls=None):
    """Send one command to one node and return the decoded reply (raises on -ERR).
    tls: an ssl.SSLContext for a TLS node (see tls_context)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        if tls is not None:
            s = tls.wrap_socket(s)
        args = [str(a).encode() for a in args]
        s.sendall(b'*%d\r\n' % len(args) + b''.join(b'$%d\r\n%s\r\n' % (len(a), a) for a in args))
        reply = _resp_read(s.makefile('rb'))
    if isinstance(reply, Exception):
        raise reply
    return reply


def tls_context(files):
    """A client context for nodes started with `files` (.ca, .cert, .key paths):
    the chain is checked against the CA, the name is not, the certificate is shown."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(files.ca)
    ctx.load_cert_chain(files.cert, files.key)
    return ctx


def tls_conf(port, files):
    """redis.conf lines of a TLS-only node (or Sentinel) on `port`."""
    return ('port 0\ntls-port %d\ntls-cluster yes\ntls-replication yes\ntls-cert-file %s\n'
            'tls-key-file %s\ntls-ca-cert-file %s\n' % (port, files.cert, files.key, files.ca))


def _bindable(host, port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as redis does
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def free_ports(n=6, host='127.0.0.1'):
    """Random ports in 20000-22767, so the bus ports (+10000) stay below the ephemeral range."""
    found = []
    for _ in range(5000):
        p = random.randint(20000, 22767)
        if p not in found and _bindable(host, p) and _bindable(host, p + 10000):
            found.append(p)
            if len(found) == n:
                return found
    raise RuntimeError('devcluster: could not find %d free port pairs' % n)


def parse_ports(spec):
    """'7000-7005' or '7000,7001,...' -> list of ints."""
    a, _, b = spec.partition('-')
    return list(range(int(a), int(b) + 1)) if b else [int(p) for p in spec.split(',') if p.strip()]


def _set_pdeathsig():
    """Make redis-server die with us (Linux), so a crashed test run leaves no orphans."""
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class DevCluster:
    """A local cluster of redis-server child processes, one directory per node."""

    def __init__(self, ports=None, base_dir=None, node_timeout_ms=2000,
                 redis_server='redis-server', host='127.0.0.1', tls=None):
        self.host, self.redis_server, self.node_timeout_ms = host, redis_server, node_timeout_ms
        self.tls = tls                  # .ca, .cert, .key: TLS mode (see the module's doc)
        self.ssl_context = tls_context(tls) if tls else None
        self.ports = list(ports) if ports else free_ports(6, host)
        self._own_dir, self.base_dir = base_dir is None, base_dir
        self.procs = {}

    @property
    def addrs(self):
        return ['%s:%d' % (self.host, p) for p in self.ports]

    def _dir(self, port):
        return os.path.join(self.base_dir, str(port))

    def command(self, port, *args, timeout=3.0):
        """command() to one of our nodes, over TLS in TLS mode."""
        return command(self.host, port, *args, timeout=timeout, tls=self.ssl_context)

    def log_tail(self, port, n=15):
        """Last lines of the node's redis.out (early startup errors) + redis.log."""
        out = ''
        for name in ('redis.out', 'redis.log'):
            try:
                with open(os.path.join(self._dir(port), name), errors='replace') as f:
                    out += ''.join(f.readlines()[-n:])
            except OSError:
                pass
        return out or '(no log)\n'

    def _fail(self, msg, ports=None):
        tails = ''.join('--- node %d log tail ---\n%s' % (p, self.log_tail(p))
                        for p in (ports or self.ports))
        raise RuntimeError('devcluster: %s\n%s' % (msg, tails))

    def _launch(self, port):
        d = self._dir(port)
        os.makedirs(d, exist_ok=True)
        conf = os.path.join(d, 'redis.conf')
        with open(conf, 'w') as f:  # repl-* settings: replicas sync and show up in ~1s, not 10s
            f.write('port %d\nbind %s\nprotected-mode no\ndaemonize no\ndir %s\nlogfile redis.log\n'
                    'cluster-enabled yes\ncluster-config-file nodes.conf\ncluster-node-timeout %d\n'
                    'appendonly no\nsave ""\nrepl-diskless-sync-delay 0\nrepl-ping-replica-period 1\n'
                    % (port, self.host, d, self.node_timeout_ms))
            if self.tls:  # later lines win: port 0
                f.write(tls_conf(port, self.tls))
        try:
            with open(os.path.join(d, 'redis.out'), 'ab') as out:
                self.procs[port] = subprocess.Popen(
                    [self.redis_server, conf], cwd=d, stdin=subprocess.DEVNULL, stdout=out,
                    stderr=out, start_new_session=True,  # so Ctrl-C reaches only us
                    preexec_fn=_set_pdeathsig)
        except OSError as e:
            raise RuntimeError('devcluster: cannot run %r: %s' % (self.redis_server, e))

    def _wait_ping(self, ports, deadline):
        for p in ports:
            while self.procs[p].poll() is None:
                try:
                    if self.command(p, 'PING', timeout=1) == 'PONG':
                        break
                except (OSError, RuntimeError):
                    if time.time() > deadline:
                        self._fail('node %d did not answer PING' % p, [p])
                    time.sleep(0.05)
            else:
                self._fail('redis-server on port %d exited (%s)' % (p, self.procs[p].returncode), [p])

    def alive(self):
        return [p for p in self.ports if p in self.procs and self.procs[p].poll() is None]

    def _check_ok(self):
        """None if every live node is ok, all agree on CLUSTER SLOTS and know all live nodes."""
        live, views = self.alive(), []
        for p in live:
            if 'cluster_state:ok' not in self.command(p, 'CLUSTER', 'INFO'):
                return 'node %d: cluster_state not ok' % p
            views.append(sorted((r[0], r[1], r[2][1], tuple(sorted(x[1] for x in r[3:])))
                                for r in self.command(p, 'CLUSTER', 'SLOTS')))
        if any(v != views[0] for v in views):
            return 'nodes disagree on CLUSTER SLOTS'
        if sum(e - s + 1 for s, e, _, _ in views[0]) != NSLOTS:
            return 'not all slots covered'
        seen = {m for _, _, m, _ in views[0]} | {r for v in views[0] for r in v[3]}
        if seen != set(live):
            return 'CLUSTER SLOTS shows %s, live nodes are %s' % (sorted(seen), sorted(live))
        return None

    def wait_ok(self, timeout=30):
        """Block until every live node reports cluster_state:ok and all agree on the slots."""
        deadline, why = time.time() + timeout, 'timeout'
        while time.time() < deadline:
            try:
                why = self._check_ok()
            except (OSError, RuntimeError) as e:
                why = repr(e)
            if why is None:
                return
            time.sleep(0.1)
        self._fail('cluster not ready after %ss: %s' % (timeout, why))

    def start(self, timeout=30):
        deadline = time.time() + timeout
        busy = [p for p in self.ports
                if not (_bindable(self.host, p) and _bindable(self.host, p + 10000))]
        if busy:
            raise RuntimeError('devcluster: port (or its +10000 bus port) in use: %s' % busy)
        if self.base_dir is None:
            self.base_dir = tempfile.mkdtemp(prefix='geproxy-devcluster-')
        try:
            for p in self.ports:
                self._launch(p)
            self._wait_ping(self.ports, deadline)
            info = self.command(self.ports[0], 'CLUSTER', 'INFO')
            if 'cluster_known_nodes:%d\r' % len(self.ports) not in info:  # else: reused --dir
                tls = ['--tls', '--cacert', self.tls.ca, '--cert', self.tls.cert, '--key', self.tls.key] \
                    if self.tls else []
                cli = subprocess.run(
                    ['redis-cli'] + tls + ['--cluster', 'create'] + self.addrs +
                    ['--cluster-replicas', '1', '--cluster-yes'], stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    timeout=max(5, deadline - time.time()))
                if cli.returncode != 0:
                    self._fail('redis-cli --cluster create failed:\n'
                               + cli.stdout.decode(errors='replace')[-3000:])
            self.wait_ok(max(1, deadline - time.time()))
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        """SIGTERM every node, SIGKILL stragglers after 5s, remove our temp dir."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
                proc.send_signal(signal.SIGCONT)  # in case a test SIGSTOPped it
        deadline = time.time() + 5
        for proc in self.procs.values():
            try:
                proc.wait(max(0.01, deadline - time.time()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        if self._own_dir and self.base_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None

    def kill(self, port, sig=signal.SIGKILL):
        """Send sig to one node; for terminating signals also wait until it is gone."""
        proc = self.procs[port]
        if proc.poll() is None:
            proc.send_signal(sig)
            if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
                proc.send_signal(signal.SIGCONT)
                proc.wait(10)

    def restart(self, port, timeout=30):
        """Start a node again from its dir/nodes.conf (it rejoins); use wait_ok() to settle."""
        if port in self.procs and self.procs[port].poll() is None:
            self.kill(port, signal.SIGTERM)
        self._launch(port)
        self._wait_ping([port], time.time() + timeout)

    def client(self, port):
        import redis
        if self.tls:
            return redis.Redis(host=self.host, port=port, protocol=2, decode_responses=False, ssl=True,
                               ssl_ca_certs=self.tls.ca, ssl_certfile=self.tls.cert, ssl_keyfile=self.tls.key,
                               ssl_check_hostname=False)
        return redis.Redis(host=self.host, port=port, protocol=2, decode_responses=False)

    def _role_ports(self, role):
        for p in self.alive():
            try:
                out = self.command(p, 'CLUSTER', 'NODES')
            except OSError:
                continue
            rows = [(line.split()[1], line.split()[2].split(",")) for line in out.splitlines() if line]
            return sorted(int(a.split('@')[0].rsplit(':', 1)[1]) for a, flags in rows
                          if role in flags and 'fail' not in flags)
        raise RuntimeError('devcluster: no live node')

    def masters(self):
        """Ports of masters not flagged FAIL, per CLUSTER NODES of a live node."""
        return self._role_ports('master')

    def replicas(self):
        return self._role_ports('slave')

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main(argv=None):
    ap = argparse.ArgumentParser(prog='python -m geproxy.devcluster',
                                 description=__doc__.splitlines()[0])
    ap.add_argument('--ports', help='7000-7005 or 7000,7001,... (default: free ports)')
    ap.add_argument('--dir', help='base directory (default: a temp dir, removed on exit)')
    ap.add_argument('--timeout', type=float, default=30, help='seconds to get ready (30)')
    args = ap.parse_args(argv)
    for s in (signal.SIGINT, signal.SIGTERM):  # also interrupts start(), which cleans up
        signal.signal(s, signal.default_int_handler)
    dc, rc = DevCluster(parse_ports(args.ports) if args.ports else None, base_dir=args.dir), 0
    try:
        dc.start(args.timeout)
        print('devcluster ready: %s (masters %s, dir %s)'
              % (' '.join(dc.addrs), dc.masters(), dc.base_dir), flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    except RuntimeError as e:
        print(e, file=sys.stderr, flush=True)
        rc = 1
    finally:
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)  # a second Ctrl-C must not abort the cleanup
        dc.stop()
    print('devcluster stopped', flush=True)
    return rc


if __name__ == '__main__':
    sys.exit(main())
