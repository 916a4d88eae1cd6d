"""The proxy: a gevent StreamServer that gives each client a Session, in front
of one server pool (a Redis Cluster, or groups: grouppool.py)."""

import ctypes
import ctypes.util
import fcntl
import gc
import json
import logging
import os
import signal
import socket
import time

import gevent
import psutil
from gevent import socket as gsocket
from gevent.server import StreamServer

from . import greenlets
from .authority import Authority
from .latency import LatencyMonitors
from .monitor import Monitor
from .listener import bind
from .readpolicy import DataCenters
from .router import Router
from .sender import Sender
from .grouppool import GroupServerPool
from .serverpool import ClusterServerPool
from .settings import POOL
from .session import Session
from .stats import Stats

log = logging.getLogger("geproxy")
BIG_REPLIES = 64 * 1024     # a client whose replies ran this big leaves freed memory worth giving back


def _read_json(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _malloc_trim():
    """glibc's malloc_trim, or None: freed reply buffers stay in the heap
    (fragmented) unless handed back to the system explicitly."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


class Proxy:
    def __init__(self, cfg, worker_id=None, rundir=None):
        self.cfg = cfg
        self.worker_id = worker_id  # None: the only process
        self.rundir = rundir        # the arbiter's folder shared by the workers
        self.latency = LatencyMonitors(cfg.latency)
        dcs = DataCenters(cfg.LocalDC, cfg.datacenters)
        if cfg.pool_kind == POOL:
            self.pool = ClusterServerPool(cfg.pool, self.latency, dcs)
        else:
            self.pool = GroupServerPool(cfg.pool, self.latency, dcs, cfg.pool_kind)
        self.authority = Authority(cfg.authority)
        self.oom = False            # over MaxMemory: commands that grow memory are refused
        self.trim_due = False       # a client with big replies left: give the freed memory back
        self.draining = False       # stopping: clients are answered, not read
        self._trim = _malloc_trim()
        self.pause = None           # pause.Pause while CLIENT PAUSE holds clients
        self.monitor = Monitor(self.pool)
        self.sender = Sender(self.pool, self.latency)
        self.router = Router(self)
        self.stats = Stats()
        self.sessions = {}
        self.started = time.time()
        self._process = psutil.Process()
        self.server = None
        self._watchers = []

    def rss(self):
        return self._process.memory_info().rss

    def set_config(self, name: str, value: str, share: bool = True) -> None:
        """CONFIG SET of an online setting; the parts that read it see it at once.
        With workers, the change is merged into the run folder's file, which
        every worker reads when it starts (a restarted one too), and the
        arbiter tells every worker to take it (SIGUSR1)."""
        self.cfg.set(name, value)
        if name == "MaxMemory":
            self._check_memory()
        if share and self.rundir:
            path = os.path.join(self.rundir, "config.json")
            with open(os.path.join(self.rundir, "config.lock"), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)    # two workers' CONFIG SETs: both kept
                changes = _read_json(path)
                changes[name] = value
                with open(path + ".tmp", "w") as f:
                    json.dump(changes, f)
                os.replace(path + ".tmp", path)
            os.kill(os.getppid(), signal.SIGUSR1)

    def reset_stats(self):
        self.stats.reset()
        for s in self.pool.servers.values():
            s.requests = s.responses = s.send_bytes = s.recv_bytes = 0
        self.latency.reset()

    def _check_memory(self):
        limit = self.cfg.MaxMemory
        over = bool(limit) and self.rss() > limit
        if over != self.oom:
            log.warning("memory %s MaxMemory (%d bytes): %s", "over" if over else "back under", limit,
                        "refusing commands that grow memory" if over else "accepting all commands")
        self.oom = over

    def _watch_memory(self):
        while True:
            if self.trim_due:
                self.trim_due = False
                if self._trim is not None:
                    self._trim(0)
            self._check_memory()
            gevent.sleep(0.1)

    def _reap_idle(self):
        """ClientTimeout, read live so CONFIG SET reaches clients already idle."""
        while True:
            gevent.sleep(0.25)
            limit = self.cfg.ClientTimeout
            if not limit:
                continue
            now = time.time()
            for session in list(self.sessions.values()):
                if session.idle_for(now) > limit:
                    log.info("client %s idle for %ss: closed", session.peer(), limit)
                    session.hang_up()

    def apply_shared_config(self) -> None:
        """Take the online settings changed by CONFIG SET in any worker so far."""
        if self.rundir:
            for name, value in _read_json(os.path.join(self.rundir, "config.json")).items():
                self.set_config(name, value, share=False)

    def start(self, listener=None):
        """Serve on `listener` (a stdlib socket from the arbiter) or on Bind."""
        listener = gsocket.socket(fileno=(listener or bind(self.cfg.Bind)).detach())
        listener.setblocking(False)
        self.apply_shared_config()  # a worker (re)started after a CONFIG SET starts with it
        self.pool.start()  # know the cluster before taking clients (or start anyway: CLUSTERDOWN)
        self.server = StreamServer(listener, self._handle, spawn=greenlets.spawn)
        self.server.start()
        # What exists now (command table, slot map, modules) lives as long as the process: keep
        # the cyclic GC from scanning it again and again under the allocation rate of requests.
        gc.freeze()
        log.info("geproxy %s listening on %s", self.cfg.Name, self.cfg.Bind)
        self._watchers = [greenlets.spawn(self._watch_memory), greenlets.spawn(self._reap_idle)]

    def stop(self, timeout: float = None) -> None:
        """Graceful: stop accepting and reading clients, answer every command
        already sent to a node, then close (at most GracefulTimeout seconds)."""
        self.draining = True
        if self.server is not None:
            self.server.close()
            deadline = time.time() + (self.cfg.GracefulTimeout if timeout is None else timeout)
            while any(s.owes() for s in self.sessions.values()):
                if time.time() >= deadline:
                    log.warning("stopping with replies still due to %d clients (GracefulTimeout)",
                                sum(1 for s in self.sessions.values() if s.owes()))
                    break
                gevent.sleep(0.02)
            self.server.stop(timeout=0.1)
        for g in self._watchers:
            g.kill(block=False)
        self.pool.stop()

    def _handle(self, sock, address):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1) if sock.family != socket.AF_UNIX else None
        session = Session(self, sock, address)
        stats = self.stats
        stats.accept += 1
        stats.client_connections += 1
        self.sessions[session.id] = session
        try:
            session.run()
        finally:
            stats.client_connections -= 1
            del self.sessions[session.id]
            sock.close()
            if session.reply_size >= BIG_REPLIES:
                self.trim_due = True
