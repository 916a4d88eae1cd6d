"""The arbiter: with WorkerProcesses = N it owns N worker processes, each a
full gevent proxy on the same ports, Bind and TLSBind (SO_REUSEPORT for TCP,
so the kernel spreads connections; an inherited socket for a unix path).  It
restarts a worker that dies, forwards SIGTERM/SIGINT (graceful stop) and SIGHUP
(reopen logs, read the TLS certificate again), and serves the metrics of all
workers summed.

The arbiter itself never starts gevent: it forks, waits and signals.
"""

import logging
import os
import select
import shutil
import signal
import tempfile
import time

from .listener import ListenError, addresses, bind_all, is_unix
from .tls import TLSSettingError

log = logging.getLogger("geproxy.arbiter")

RESTART_BACKOFF = 1.0      # seconds between restarts of a worker that keeps dying


class Arbiter:
    def __init__(self, cfg, run_worker, log_handler):
        self.cfg = cfg
        self.run_worker = run_worker        # (cfg, listeners, worker_id, rundir) -> exit code
        self.log_handler = log_handler
        self.workers = {}                   # pid -> worker id
        self.stopping = False
        self.listeners = {}                 # setting name -> socket the workers inherit (unix paths)
        self.rundir = None                  # shared with the workers: metrics snapshots, CONFIG SET
        self.signals = []                   # received, not yet acted on (the loop acts)
        self.restarts = {}                  # worker id -> when to start it again
        self.last_exit = {}                 # worker id -> when it last died

    def run(self) -> int:
        self.listeners = bind_all(self.cfg, reuseport=True)  # fails early, before any fork
        for key, addr in addresses(self.cfg).items():
            if not is_unix(addr):
                self.listeners.pop(key).close()  # each worker binds its own REUSEPORT socket
        self.rundir = tempfile.mkdtemp(prefix="geproxy-run-")
        if self.cfg.MetricsBind:
            from . import metrics
            metrics.start_for_arbiter(self.cfg, self.rundir)
        # Signal handlers only queue the signal and wake the loop (the pipe): the loop acts,
        # so nothing forks, logs or writes files from inside a handler.
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGCHLD):
            signal.signal(sig, self._queue)
        for wid in range(self.cfg.WorkerProcesses):
            self._spawn(wid)
        log.info("arbiter %d: %d workers on %s", os.getpid(), len(self.workers),
                 ", ".join("%s %s" % kv for kv in addresses(self.cfg).items()))
        try:
            while self.workers or self.restarts and not self.stopping:
                self._handle_signals()
                self._reap()
                self._restart_due()
                if self.workers or self.restarts and not self.stopping:
                    select.select([wake_r], [], [], 0.5)
                    try:
                        os.read(wake_r, 4096)
                    except BlockingIOError:
                        pass
        finally:
            signal.set_wakeup_fd(-1)
            os.close(wake_r)
            os.close(wake_w)
        log.info("arbiter %d: all workers stopped", os.getpid())
        shutil.rmtree(self.rundir, ignore_errors=True)
        return 0

    def _queue(self, signum, frame):
        self.signals.append(signum)

    def _handle_signals(self):
        while self.signals:
            signum = self.signals.pop(0)
            if signum in (signal.SIGTERM, signal.SIGINT):
                self.stopping = True
                self.restarts.clear()
                self._forward(signal.SIGTERM)
            elif signum == signal.SIGHUP:
                from . import logs
                logs.reopen(self.log_handler)
                self._forward(signum)
            elif signum == signal.SIGUSR1:      # a worker ran CONFIG SET: all take it
                self._forward(signum)

    def _reap(self):
        """Collect exited workers; a worker that died is restarted (after a back-off
        when it keeps dying), unless the arbiter is stopping."""
        while self.workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.workers.clear()
                return
            if pid == 0:
                return
            wid = self.workers.pop(pid, None)
            if wid is None or self.stopping:
                continue
            log.warning("worker %d (pid %d) %s; restarting", wid, pid, _how(status))
            now = time.monotonic()
            recent = now - self.last_exit.get(wid, 0) < RESTART_BACKOFF
            self.last_exit[wid] = now
            self.restarts[wid] = now + (RESTART_BACKOFF if recent else 0)

    def _restart_due(self):
        now = time.monotonic()
        for wid, when in list(self.restarts.items()):
            if when <= now and not self.stopping:
                del self.restarts[wid]
                self._spawn(wid)

    def _spawn(self, wid):
        pid = os.fork()
        if pid:
            self.workers[pid] = wid
            return
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            listeners = bind_all(self.cfg, reuseport=True, have=self.listeners)
            code = self.run_worker(self.cfg, listeners, wid, self.rundir)
        except (ListenError, TLSSettingError) as e:
            log.error("worker %d cannot start: %s", wid, e)
        except BaseException:
            log.exception("worker %d failed", wid)
        finally:
            os._exit(code)

    def _forward(self, signum):
        for pid in list(self.workers):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass


def _how(status):
    code = os.waitstatus_to_exitcode(status)
    return "was killed by signal %d" % -code if code < 0 else "exited with code %d" % code
