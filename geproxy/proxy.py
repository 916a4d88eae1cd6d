"""The proxy: a gevent StreamServer that gives each client a Session, in front
of one ClusterServerPool."""

import logging
import os
import socket
import time

import gevent
import psutil
from gevent import socket as gsocket
from gevent.server import StreamServer

from .authority import Authority
from .latency import LatencyMonitors
from .readpolicy import DataCenters
from .router import Router
from .serverpool import ClusterServerPool
from .session import Session
from .settings import parse_address
from .stats import Stats

log = logging.getLogger("geproxy")


def listen(bind, backlog=1024):
    """A listening socket for host:port, [v6]:port or a unix socket path."""
    host, port = parse_address(bind)
    if port is None:
        if os.path.exists(host):
            os.unlink(host)
        sock = gsocket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(host)
    else:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = gsocket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


class Proxy:
    def __init__(self, cfg, worker_id=None):
        self.cfg = cfg
        self.worker_id = worker_id  # None: the only process
        self.latency = LatencyMonitors(cfg.latency)
        self.pool = ClusterServerPool(cfg.pool, self.latency, DataCenters(cfg.LocalDC, cfg.datacenters))
        self.authority = Authority(cfg.authority)
        self.oom = False            # over MaxMemory: commands that grow memory are refused
        self.router = Router(self)
        self.stats = Stats()
        self.sessions = {}
        self.started = time.time()
        self._process = psutil.Process()
        self.server = None
        self._memory = None

    def rss(self):
        return self._process.memory_info().rss

    def set_config(self, name, value):
        """CONFIG SET of an online setting; the parts that read it see it at once."""
        self.cfg.set(name, value)
        if name == "MaxMemory":
            self._check_memory()

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
            self._check_memory()
            gevent.sleep(0.1)

    def start(self, listener=None):
        """Serve on `listener` (a stdlib socket from the arbiter) or on Bind."""
        if listener is not None:
            listener = gsocket.socket(fileno=listener.detach())
            listener.setblocking(False)
        self.server = StreamServer(listener or listen(self.cfg.Bind), self._handle)
        self.server.start()
        log.info("geproxy %s listening on %s", self.cfg.Name, self.cfg.Bind)
        self._memory = gevent.spawn(self._watch_memory)
        self.pool.start()

    def stop(self, timeout=5):
        """Graceful: stop accepting, let clients get the replies in flight, then close."""
        if self.server is not None:
            self.server.close()
            deadline = time.time() + timeout
            while any(s.replies for s in self.sessions.values()) and time.time() < deadline:
                gevent.sleep(0.05)
            self.server.stop(timeout=0.1)
        if self._memory is not None:
            self._memory.kill(block=False)
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
