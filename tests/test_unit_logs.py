"""AllowMissLog: when stdout is a pipe nobody drains (a stalled supervisord),
geproxy loses log lines rather than stop serving; with it off, it waits."""

import logging
import os
import threading
import time
from types import SimpleNamespace

from geproxy import logs


def record(i):
    return logging.makeLogRecord({"name": "t", "levelno": logging.INFO, "levelname": "INFO",
                                  "msg": "line %d %s" % (i, "x" * 200)})


def drain(fd):
    os.set_blocking(fd, False)
    out = b""
    try:
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            out += chunk
    except BlockingIOError:
        pass
    return out


def test_a_full_pipe_loses_lines_and_says_so():
    r, w = os.pipe()
    stream = os.fdopen(w, "w")
    h = logs.PipeOut(SimpleNamespace(AllowMissLog=True), stream)
    try:
        started = time.monotonic()
        n = 20000                                   # ~4 MiB: past the pipe (64 KiB) and BACKLOG (1 MiB)
        for i in range(n):
            h.handle(record(i))
        assert time.monotonic() - started < 20      # never waited on the pipe
        assert h.lost > 0
        got = drain(r)
        while h.backlog:                            # what was kept comes out as the pipe drains
            h.handle(record(-1))
            got += drain(r)
        h.handle(record(-2))
        got += drain(r)
        text = got.decode()
        assert "log lines lost" in text
        assert text.endswith("line -2 " + "x" * 200 + "\n")
        lines = text.splitlines()
        assert all(l.startswith("line ") or "log lines lost" in l for l in lines)   # no line cut
    finally:
        stream.close()
        os.close(r)


def test_without_allow_miss_log_the_logger_waits():
    r, w = os.pipe()
    stream = os.fdopen(w, "w")
    h = logs.PipeOut(SimpleNamespace(AllowMissLog=False), stream)
    done = threading.Event()

    def flood():
        for i in range(2000):                       # ~400 KiB: more than the pipe holds
            h.handle(record(i))
        done.set()
    threading.Thread(target=flood, daemon=True).start()
    try:
        assert not done.wait(1.0)                   # held until the pipe drains
        got = b""
        deadline = time.monotonic() + 30
        while not done.is_set() and time.monotonic() < deadline:
            got += drain(r)
            time.sleep(0.01)
        assert done.is_set()
        got += drain(r)
        assert got.decode().count("\n") == 2000     # nothing lost
    finally:
        stream.close()
        os.close(r)
