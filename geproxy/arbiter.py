"""The arbiter: with WorkerProcesses = N it owns N worker processes, each a
full gevent proxy on the same port (SO_REUSEPORT for TCP, so the kernel
spreads connections; an inherited socket for a unix path).  It restarts a
worker that dies, forwards SIGTERM/SIGINT (graceful stop) and SIGHUP (reopen
logs), and serves the metrics of all workers summed.

The arbiter itself never starts gevent: it forks, waits and signals.
"""

import errno
import logging
import os
import shutil
import signal
import tempfile
import time

from .listener import bind, is_unix

log = logging.getLogger("geproxy.arbiter")

RESTART_BACKOFF = 1.0      # seconds between restarts of a worker that keeps dying


class Arbiter:
    def __init__(self, cfg, run_worker, log_handler):
        self.cfg = cfg
        self.run_worker = run_worker        # (cfg, listener, worker_id, rundir) -> exit code
        self.log_handler = log_handler
        self.workers = {}                   # pid -> worker id
        self.stopping = False
        self.unix = is_unix(cfg.Bind)
        self.rundir = None                  # shared with the workers: metrics snapshots, CONFIG SET

    def run(self):
        self.listener = bind(self.cfg.Bind, reuseport=not self.unix)  # fails early, before any fork
        if not self.unix:
            self.listener.close()  # each worker binds its own REUSEPORT socket
            self.listener = None
        self.rundir = tempfile.mkdtemp(prefix="geproxy-run-")
        if self.cfg.MetricsBind:
            from . import metrics
            metrics.start_for_arbiter(self.cfg, self.rundir)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        signal.signal(signal.SIGHUP, self._reopen)
        signal.signal(signal.SIGUSR1, self._forward)  # a worker ran CONFIG SET: all take it
        for wid in range(self.cfg.WorkerProcesses):
            self._spawn(wid)
        log.info("arbiter %d: %d workers on %s", os.getpid(), len(self.workers), self.cfg.Bind)
        last_exit = {}
        while self.workers:
            try:
                pid, status = os.wait()
            except InterruptedError:
                continue
            except OSError as e:
                if e.errno == errno.ECHILD:
                    break
                raise
            wid = self.workers.pop(pid, None)
            if wid is None or self.stopping:
                continue
            log.warning("worker %d (pid %d) %s; restarting", wid, pid, _how(status))
            if time.monotonic() - last_exit.get(wid, 0) < RESTART_BACKOFF:
                time.sleep(RESTART_BACKOFF)
            last_exit[wid] = time.monotonic()
            self._spawn(wid)
        log.info("arbiter %d: all workers stopped", os.getpid())
        shutil.rmtree(self.rundir, ignore_errors=True)
        return 0

    def _spawn(self, wid):
        pid = os.fork()
        if pid:
            self.workers[pid] = wid
            return
        code = 1
        try:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
                signal.signal(sig, signal.SIG_DFL)
            listener = self.listener or bind(self.cfg.Bind, reuseport=True)
            code = self.run_worker(self.cfg, listener, wid, self.rundir)
        except BaseException:
            log.exception("worker %d failed", wid)
        finally:
            os._exit(code)

    def _stop(self, signum, frame):
        self.stopping = True
        self._forward(signal.SIGTERM, frame)

    def _reopen(self, signum, frame):
        from . import logs
        logs.reopen(self.log_handler)
        self._forward(signum, frame)

    def _forward(self, signum, frame):
        for pid in list(self.workers):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass


def _how(status):
    code = os.waitstatus_to_exitcode(status)
    return "was killed by signal %d" % -code if code < 0 else "exited with code %d" % code
