"""What the "answer as Redis answers" tests share: a standalone redis-server
beside the cluster, to ask the same thing of both, and raw exchanges whose
replies are compared byte for byte (or, where Redis's own order is a hash
table's, as parsed values)."""

import shutil
import subprocess
import tempfile

import hiredis
import pytest

from conftest import HOST, RawClient, free_port, ping, replies, wait_for
from geproxy.resp import command


@pytest.fixture(scope="module")
def standalone():
    """The port of a plain redis-server (no cluster, no password) for this module."""
    d = tempfile.mkdtemp(prefix="geproxy-answers-")
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", HOST, "--save", "",
                             "--appendonly", "no", "--dir", d], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: ping(port), 10), "standalone redis-server did not start"
        yield port
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(d, ignore_errors=True)


def exchange(port: int, *steps, timeout: float = 10.0) -> list:
    """On one new connection, send each step's command and read its replies.
    A step is a tuple of arguments (one reply) or (n, args...) for n replies;
    the raw replies of each step, joined, in a list."""
    c = RawClient(port, timeout=timeout)
    try:
        out = []
        for step in steps:
            n, args = (step[0], step[1:]) if isinstance(step[0], int) else (1, step)
            c.send(command(*args))
            out.append(c.recv_until(replies(n), timeout=timeout))
        return out
    finally:
        c.close()


def parsed(data: bytes) -> list:
    """Every RESP value in `data`, parsed (errors as ReplyError values)."""
    rd = hiredis.Reader()
    rd.feed(data)
    out = []
    while True:
        v = rd.gets()
        if v is False:
            return out
        out.append(v)
