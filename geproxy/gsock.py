"""The gevent socket internals the hot path uses, in one place, for plain and
TLS sockets alike.

A gevent socket's recv() and send() try the plain non-blocking socket first and
wait on failure.  A session or node link that was just answered knows a read
would fail, so it waits first and then reads the plain socket (one failed
syscall fewer per request), and writes the plain socket without the retry loop.

A TLS socket (gevent.ssl.SSLSocket) must be read and written through its SSL
object, never the plain socket under it (that would bypass TLS).  The SSL
object may also hold decrypted bytes already taken off the socket, which a wait
for readability would never see: its wait returns at once while pending() is
not 0.  reader() and sender() hand out the right functions for either kind, so
the callers have one code path and the plain one costs what it did.

gevent does not document these attributes: check() runs at import and fails
loudly if a gevent release renames them, and requirements.txt pins the tested
releases (tests/test_unit_gsock.py exercises them, over TLS too).
"""

import _socket
import ssl
from typing import Callable, Tuple

import gevent
from gevent import socket as gsocket

# What one SSL write is given at most: one TLS record's worth.  OpenSSL takes a
# write it could not finish only when retried with the same bytes; handing it a
# record at a time means what it has not taken starts at our `sent`, which the
# callers resend from, whatever they do next (gevent's sendall cuts its own chunks).
RECORD = 16384

_PLAIN = gsocket.socket
Recv = Callable[[int], bytes]
Send = Callable[[bytes], int]


def plain(sock: gsocket.socket) -> _socket.socket:
    """The non-blocking C-level socket under a gevent socket (not for TLS sockets)."""
    return sock._sock


def is_tls(sock: gsocket.socket) -> bool:
    """Does this socket speak TLS (a gevent SSLSocket with its SSL object)?"""
    return sock.__class__ is not _PLAIN and getattr(sock, "_sslobj", None) is not None


def reader(sock: gsocket.socket) -> Tuple[Recv, Callable, object]:
    """(recv, wait, event): recv(n) reads without waiting (BlockingIOError when
    nothing is there, b"" at the end); wait(event) parks the greenlet until
    recv has something to give.  Take it after a TLS handshake."""
    sslobj = None if sock.__class__ is _PLAIN else getattr(sock, "_sslobj", None)
    if sslobj is None:
        return sock._sock.recv, sock._wait, sock._read_event
    return _tls_recv(sslobj), _tls_wait(sock, sslobj), sock._read_event


def sender(sock: gsocket.socket) -> Send:
    """send(data) -> bytes taken now, never waiting (BlockingIOError when none).
    What was not taken must be offered next, all of it (more may follow it):
    for TLS, OpenSSL may hold part of it already and expects those bytes again."""
    if sock.__class__ is _PLAIN:
        return sock._sock.send
    sslobj = getattr(sock, "_sslobj", None)
    if sslobj is None:
        return sock._sock.send
    return _tls_send(sslobj)


def _tls_recv(sslobj) -> Recv:
    read = sslobj.read

    def recv(n: int) -> bytes:
        while True:
            try:
                data = read(n)
                break
            except ssl.SSLWantReadError:
                raise BlockingIOError() from None
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""      # close_notify, or the peer just closed: the end either way
            except ssl.SSLWantWriteError:
                # OpenSSL must write before it reads (renegotiation, which the server
                # context refuses, or a full buffer for a key update): rare, poll briefly
                gevent.sleep(0.005)
        if len(data) < RECORD or len(data) >= n:
            return data
        # One read gives at most one record; a full one says more is likely queued
        # behind it: take what is there now, as a plain read takes all it can.
        parts, got = [data], len(data)
        while got < n:
            try:
                more = read(n - got)
            except ssl.SSLError:    # nothing more now, or the end: the next call tells
                break
            if not more:
                break
            parts.append(more)
            got += len(more)
        return b"".join(parts)
    return recv


def _tls_wait(sock: gsocket.socket, sslobj) -> Callable:
    pending, wait = sslobj.pending, sock._wait

    def wait_readable(event) -> None:
        if not pending():
            wait(event)
    return wait_readable


def _tls_send(sslobj) -> Send:
    write = sslobj.write

    def send(data) -> int:
        n = len(data)
        if n <= RECORD:
            try:
                return write(data)
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                raise BlockingIOError() from None
        view = memoryview(data)
        sent = 0
        try:
            while sent < n:
                sent += write(view[sent:sent + RECORD])
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
            if not sent:
                raise BlockingIOError() from None
        return sent
    return send


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
    from gevent import ssl as gssl
    if not hasattr(gssl.SSLSocket, "pending"):
        raise ImportError("gevent's SSLSocket has no pending(): install a gevent release requirements.txt allows")


check()
