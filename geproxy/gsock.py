"""The gevent socket internals the hot path uses, in one place.

A gevent socket's recv() and send() try the plain non-blocking socket first and
wait on failure.  A session or node link that was just answered knows a read
would fail, so it waits first and then reads the plain socket (one failed
syscall fewer per request), and writes the plain socket without the retry loop.
gevent does not document these attributes: check() runs at import and fails
loudly if a gevent release renames them, and requirements.txt pins the tested
releases (tests/test_unit_gsock.py exercises them).
"""

import _socket
from typing import Callable, Tuple

from gevent import socket as gsocket


def plain(sock: gsocket.socket) -> _socket.socket:
    """The non-blocking C-level socket under a gevent socket."""
    return sock._sock


def reader(sock: gsocket.socket) -> Tuple[Callable[[int], bytes], Callable, object]:
    """(recv, wait, event): recv(n) reads the plain socket (BlockingIOError when
    nothing is there); wait(event) parks the greenlet until it is readable."""
    return sock._sock.recv, sock._wait, sock._read_event


def check() -> None:
    a, b = gsocket.socketpair()
    try:
        for name in ("_sock", "_wait", "_read_event"):
            if not hasattr(a, name):
                raise ImportError("geproxy needs gevent's socket.%s, which this gevent has not: "
                                  "install a gevent release requirements.txt allows" % name)
        if not isinstance(a._sock, _socket.socket):
            raise ImportError("gevent's socket._sock is no longer a plain socket")
    finally:
        a.close()
        b.close()


check()
