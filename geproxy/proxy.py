"""The proxy: gevent StreamServers (Bind, and TLSBind for TLS) that give each
client a Session, in front of one server pool (a Redis Cluster, or groups:
grouppool.py)."""

import ctypes
import ctypes.util
import errno
import fcntl
import gc
import json
import logging
import os
import signal
import socket
import ssl
import time

import gevent
import psutil
from gevent import socket as gsocket
from gevent.server import StreamServer

from . import greenlets, tls
from .authfail import SampledLog
from .authority import Authority
from .latency import LatencyMonitors
from .monitor import Monitor
from .listener import addresses, bind_all
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
TLS_REFUSED = SampledLog("TLS handshake failed: %s")   # a flood of bad clients cannot fill the disk


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
        self.tls = tls.ClientTLS(cfg) if cfg.TLSBind else None   # the TLS listener's context
        self.servers = []
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

    def start(self, listeners: dict = None) -> None:
        """Serve on `listeners` (setting name -> stdlib socket, from the arbiter)
        or on Bind and TLSBind."""
        listeners = listeners or bind_all(self.cfg)
        self.apply_shared_config()  # a worker (re)started after a CONFIG SET starts with it
        self.pool.start()  # know the cluster before taking clients (or start anyway: CLUSTERDOWN)
        for key, sock in listeners.items():
            sock = gsocket.socket(fileno=sock.detach())
            sock.setblocking(False)
            handle = self._handle_tls if key == "TLSBind" else self._handle
            self.servers.append(StreamServer(sock, handle, spawn=greenlets.spawn))
            self.servers[-1].start()
        # What exists now (command table, slot map, modules) lives as long as the process: keep
        # the cyclic GC from scanning it again and again under the allocation rate of requests.
        gc.freeze()
        log.info("geproxy %s listening on %s", self.cfg.Name,
                 ", ".join("%s (%s)" % (addr, "TLS" if key == "TLSBind" else "plain")
                           for key, addr in addresses(self.cfg).items()))
        self._watchers = [greenlets.spawn(self._watch_memory), greenlets.spawn(self._reap_idle)]

    def stop(self, timeout: float = None) -> None:
        """Graceful: stop accepting and reading clients, answer every command
        already sent to a node, then close (at most GracefulTimeout seconds)."""
        self.draining = True
        if self.servers:
            for server in self.servers:
                server.close()
            deadline = time.time() + (self.cfg.GracefulTimeout if timeout is None else timeout)
            while any(s.owes() for s in self.sessions.values()):
                if time.time() >= deadline:
                    log.warning("stopping with replies still due to %d clients (GracefulTimeout)",
                                sum(1 for s in self.sessions.values() if s.owes()))
                    break
                gevent.sleep(0.02)
            for server in self.servers:
                server.stop(timeout=0.1)
        for g in self._watchers:
            g.kill(block=False)
        self.pool.stop()

    def reload_tls(self) -> None:
        """SIGHUP: new TLS clients get the certificate, key and CA as the files
        now hold them; connected ones keep their session."""
        if self.tls is not None:
            why = self.tls.reload()
            if why is None:
                log.info("TLS: certificate, key and CA read again from %s", self.cfg.TLSCertFile)
            else:
                log.error("TLS: SIGHUP: keeping the certificate in use: %s", why)

    def _handle_tls(self, sock, address):
        tsock = self._handshake(sock, address)
        if tsock is not None:
            try:
                self._handle(tsock, address, self.cfg.TLSBind)
            finally:
                tsock.close()

    def _handshake(self, sock, address):
        """The TLS socket of a new client, or None (logged, closed): the handshake
        runs in the client's own greenlet, bounded by TLSHandshakeTimeout, so a
        slow or bad one holds up no one else."""
        peer = "%s:%s" % address[:2] if isinstance(address, tuple) else "unix"
        limit = self.cfg.TLSHandshakeTimeout
        timer = gevent.Timeout(limit or None)
        tsock = None
        try:
            if sock.family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            timer.start()
            tsock = self.tls.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            tsock.do_handshake()
            return tsock
        except gevent.Timeout as e:
            if e is not timer:
                raise
            TLS_REFUSED.note("client %s: not done within TLSHandshakeTimeout (%ss): closed" % (peer, limit))
        except (ssl.SSLEOFError, ConnectionError):
            log.debug("client %s: closed during the TLS handshake", peer)
        except OSError as e:
            if isinstance(e, ssl.SSLError) or e.errno != errno.ENOTCONN:
                TLS_REFUSED.note("client %s: %s" % (peer, tls.handshake_failure(e)))
            else:   # reset before the handshake began
                log.debug("client %s: closed before the TLS handshake", peer)
        except ValueError as e:
            TLS_REFUSED.note("client %s: %s" % (peer, tls.handshake_failure(e)))
        finally:
            timer.close()
        if tsock is not None:
            tsock.close()
        return None

    def _handle(self, sock, address, laddr=None):
        if laddr is None and sock.family != socket.AF_UNIX:  # (a TLS client's socket has it)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        session = Session(self, sock, address, laddr or self.cfg.Bind)
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
