"""Throwaway local Redis Sentinel setup for demos and tests: groups of one
master and one replica each, watched by three Sentinels (quorum 2).

Stdlib only, like devcluster.  CLI:
``python -m geproxy.devsentinel [--groups 2] [--dir DIR]`` prints the Sentinel
addresses and the group names, then runs until interrupted.

TLS mode (``DevSentinel(tls=files)``, as in devcluster): nodes and Sentinels
listen on TLS only, and replication and Sentinel's own links speak TLS.
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from .devcluster import _set_pdeathsig, command, free_ports, tls_conf, tls_context


class DevSentinel:
    def __init__(self, groups=2, base_dir=None, down_after_ms=2000, host='127.0.0.1',
                 redis_server='redis-server', redis_sentinel='redis-sentinel', tls=None):
        self.host, self.down_after_ms = host, down_after_ms
        self.tls = tls                  # .ca, .cert, .key: TLS mode
        self.ssl_context = tls_context(tls) if tls else None
        self.redis_server, self.redis_sentinel = redis_server, redis_sentinel
        self.names = ['shard%03d' % (i + 1) for i in range(groups)]
        ports = free_ports(groups * 2 + 3, host)
        self.group_ports = {n: ports[2 * i:2 * i + 2] for i, n in enumerate(self.names)}  # [master, replica]
        self.sentinel_ports = ports[groups * 2:]
        self._own_dir, self.base_dir = base_dir is None, base_dir
        self.procs = {}

    @property
    def sentinels(self):
        return ['%s:%d' % (self.host, p) for p in self.sentinel_ports]

    def command(self, port, *args, timeout=3.0):
        """command() to one of our nodes or Sentinels, over TLS in TLS mode."""
        return command(self.host, port, *args, timeout=timeout, tls=self.ssl_context)

    def _dir(self, port):
        d = os.path.join(self.base_dir, str(port))
        os.makedirs(d, exist_ok=True)
        return d

    def _spawn(self, port, argv):
        d = self._dir(port)
        with open(os.path.join(d, 'out.log'), 'ab') as out:
            self.procs[port] = subprocess.Popen(argv, cwd=d, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                                start_new_session=True, preexec_fn=_set_pdeathsig)

    def _launch_redis(self, port, master=None):
        d = self._dir(port)
        conf = os.path.join(d, 'redis.conf')
        if not os.path.exists(conf):  # a restarted node keeps the file Sentinel may have rewritten
            with open(conf, 'w') as f:
                f.write('port %d\nbind %s\nprotected-mode no\ndir %s\nappendonly no\nsave ""\n'
                        'repl-diskless-sync-delay 0\nrepl-ping-replica-period 1\ndatabases 16\n' % (port, self.host, d))
                if master:
                    f.write('replicaof %s %d\n' % (self.host, master))
                if self.tls:
                    f.write(tls_conf(port, self.tls))
        self._spawn(port, [self.redis_server, conf])

    def _launch_sentinel(self, port):
        d = self._dir(port)
        conf = os.path.join(d, 'sentinel.conf')
        if not os.path.exists(conf):
            lines = ['port %d' % port, 'bind %s' % self.host, 'protected-mode no', 'dir %s' % d]
            if self.tls:
                lines.append(tls_conf(port, self.tls).rstrip('\n'))
            for name in self.names:
                master = self.group_ports[name][0]
                lines += ['sentinel monitor %s %s %d 2' % (name, self.host, master),
                          'sentinel down-after-milliseconds %s %d' % (name, self.down_after_ms),
                          'sentinel failover-timeout %s 10000' % name,
                          'sentinel parallel-syncs %s 1' % name]
            with open(conf, 'w') as f:
                f.write('\n'.join(lines) + '\n')
        self._spawn(port, [self.redis_sentinel, conf])

    def start(self, timeout=30):
        if self.base_dir is None:
            self.base_dir = tempfile.mkdtemp(prefix='geproxy-sentinel-')
        for name in self.names:
            master, replica = self.group_ports[name]
            self._launch_redis(master)
            self._launch_redis(replica, master)
        for port in self.sentinel_ports:
            self._launch_sentinel(port)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.ready():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError('devsentinel: not ready within %ds' % timeout)

    def ready(self):
        """Every Sentinel knows every master, its replica and the other Sentinels."""
        try:
            for p in self.sentinel_ports:
                for name in self.names:
                    info = _pairs(self.command(p, 'SENTINEL', 'master', name))
                    if int(info['num-slaves']) < 1 or int(info['num-other-sentinels']) < 2:
                        return False
            for name in self.names:
                if self.command(self.group_ports[name][1], 'INFO', 'replication').find(
                        'master_link_status:up') < 0:
                    return False
        except (OSError, RuntimeError, KeyError, ValueError, AttributeError):
            return False
        return True

    def master_of(self, name, sentinel=None):
        """The master's port, as a Sentinel says."""
        port = sentinel or self.sentinel_ports[0]
        return int(self.command(port, 'SENTINEL', 'get-master-addr-by-name', name)[1])

    def kill(self, port, sig=signal.SIGKILL):
        proc = self.procs.get(port)
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            proc.wait(10)

    def restart(self, port):
        if port in self.sentinel_ports:
            self._launch_sentinel(port)
        else:
            self._launch_redis(port)

    def stop(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        if self._own_dir and self.base_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)


def _pairs(flat):
    return dict(zip(flat[::2], flat[1::2]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--groups', type=int, default=2)
    ap.add_argument('--dir', help='working directory (default: a fresh temporary one)')
    args = ap.parse_args(argv)
    ds = DevSentinel(args.groups, args.dir)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    try:
        ds.start()
        print('devsentinel ready: sentinels %s groups %s' % (' '.join(ds.sentinels), ' '.join(
            '%s=%s' % (n, ','.join('%s:%d' % (ds.host, p) for p in ports)) for n, ports in ds.group_ports.items())),
            flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        ds.stop()


if __name__ == '__main__':
    main()
