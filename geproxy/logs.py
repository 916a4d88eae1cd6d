"""Logging as predixy does it: a file or stdout, rotation by time and/or size
(LogRotate = 1d 2G), per-level sampling (LogInfoSample = 10000 keeps every
10000th info line), reopening on SIGHUP for an external logrotate, and
AllowMissLog: when stdout is a pipe nobody drains (a stalled supervisord), lose
lines rather than stop the hub."""

import logging
import os
import select
import stat
import sys
import time

BACKLOG = 1 << 20       # bytes of lines kept for a pipe that takes nothing, before lines are lost

VERBOSE, NOTICE = 5, 25
logging.addLevelName(VERBOSE, "VERB")
logging.addLevelName(NOTICE, "NOTICE")

SAMPLE_SETTING = {VERBOSE: "LogVerbSample", logging.DEBUG: "LogDebugSample", logging.INFO: "LogInfoSample",
                  NOTICE: "LogNoticeSample", logging.WARNING: "LogWarnSample", logging.ERROR: "LogErrorSample",
                  logging.CRITICAL: "LogErrorSample"}
FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"


class Sampler(logging.Filter):
    """Keeps every N-th record of a level, N read live from the config
    (CONFIG SET LogInfoSample 100 takes effect at once); 0 drops the level."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.seen = {}

    def filter(self, record):
        every = getattr(self.cfg, SAMPLE_SETTING.get(record.levelno, "LogErrorSample"), 1)
        if every <= 0:
            return False
        n = self.seen[record.levelno] = self.seen.get(record.levelno, 0) + 1
        return (n - 1) % every == 0


class RotatingFile(logging.FileHandler):
    """A log file renamed to PATH.YYYYmmdd-HHMMSS when its period ends or it
    grows past its size; reopen() for SIGHUP."""

    def __init__(self, path, period=0, size=0):
        super().__init__(path, delay=False)
        self.period, self.size = period, size
        self.next_turn = self._turn(time.time())

    def _turn(self, now):
        return (now // self.period + 1) * self.period if self.period else float("inf")

    def emit(self, record):
        now = time.time()
        if now >= self.next_turn or (self.size and self.stream and self.stream.tell() >= self.size):
            self.rotate(now)
        super().emit(record)

    def rotate(self, now=None):
        now = now or time.time()
        self.acquire()
        try:
            self.close()
            stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
            target = "%s.%s" % (self.baseFilename, stamp)
            n = 1
            while os.path.exists(target):
                target = "%s.%s.%d" % (self.baseFilename, stamp, n)
                n += 1
            if os.path.exists(self.baseFilename):
                os.rename(self.baseFilename, target)
            self.stream = self._open()
            self.next_turn = self._turn(now)
        finally:
            self.release()

    def reopen(self):
        self.acquire()
        try:
            self.close()
            self.stream = self._open()
        finally:
            self.release()


class PipeOut(logging.StreamHandler):
    """stdout when it is a pipe or a terminal, written without ever blocking
    the hub while AllowMissLog (read live) is on: what the pipe does not take
    waits in a backlog, written before the next line; past BACKLOG bytes, lines
    are lost, counted and said once the pipe takes lines again.  With
    AllowMissLog off, a full pipe holds the process until it drains."""

    def __init__(self, cfg, stream=None):
        super().__init__(stream or sys.stdout)
        self.cfg = cfg
        self.fd = self.stream.fileno()
        self.backlog = b""
        self.lost = 0

    def emit(self, record):
        try:
            line = (self.format(record) + "\n").encode("utf-8", "replace")
        except Exception:
            self.handleError(record)
            return
        self.stream.flush()         # anything print()ed before stays ahead of this line
        if not self.cfg.AllowMissLog:
            self._write_all(self.backlog + line)
            self.backlog = b""
            return
        if self.lost and len(self.backlog) < BACKLOG:
            self.backlog += b"%d log lines lost: the pipe to stdout was full (AllowMissLog)\n" % self.lost
            self.lost = 0
        if len(self.backlog) + len(line) > BACKLOG:
            self.lost += 1
        else:
            self.backlog += line
        self.backlog = self.backlog[self._write_some(self.backlog):]

    def _write_some(self, data):
        """Write while the pipe has room, a PIPE_BUF at a time (such a write does
        not block once poll says writable); the fd's flags are shared with the
        other processes on this stdout, so they are left alone."""
        sent = 0
        try:
            while sent < len(data) and select.select([], [self.fd], [], 0)[1]:
                sent += os.write(self.fd, data[sent:sent + select.PIPE_BUF])
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            sent = len(data)        # stdout gone: nothing to keep for it
        return sent

    def _write_all(self, data):
        while data:
            data = data[os.write(self.fd, data):]


def setup(cfg):
    """Install the root handler for `cfg`; returns it (reopen() on SIGHUP)."""
    if cfg.Log:
        os.makedirs(os.path.dirname(cfg.Log) or ".", exist_ok=True)
        period, size = cfg.LogRotate
        handler = RotatingFile(cfg.Log, period, size)
    elif _is_pipe(sys.stdout):
        handler = PipeOut(cfg)
    else:
        handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(Sampler(cfg))
    root = logging.getLogger()
    for old in root.handlers:
        old.close()
    root.handlers[:] = [handler]
    root.setLevel(VERBOSE)
    return handler


def reopen(handler):
    if isinstance(handler, RotatingFile):
        handler.reopen()


def _is_pipe(stream) -> bool:
    """A pipe, socket or terminal (a write can block), not a regular file."""
    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (OSError, ValueError, AttributeError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)
