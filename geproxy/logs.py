"""Logging as predixy does it: a file or stdout, rotation by time and/or size
(LogRotate = 1d 2G), per-level sampling (LogInfoSample = 10000 keeps every
10000th info line), and reopening on SIGHUP for an external logrotate."""

import logging
import os
import sys
import time

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


def setup(cfg):
    """Install the root handler for `cfg`; returns it (reopen() on SIGHUP)."""
    if cfg.Log:
        os.makedirs(os.path.dirname(cfg.Log) or ".", exist_ok=True)
        period, size = cfg.LogRotate
        handler = RotatingFile(cfg.Log, period, size)
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
