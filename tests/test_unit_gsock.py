"""gsock.py leans on gevent socket internals; these fail loudly if a gevent
release changes them (requirements.txt pins the tested releases)."""

import gevent
import pytest
from gevent import socket as gsocket

from geproxy import gsock


def test_reader_waits_then_reads_the_plain_socket():
    a, b = gsocket.socketpair()
    try:
        recv, wait, event = gsock.reader(a)
        with pytest.raises(BlockingIOError):
            recv(10)                          # nothing there: the plain socket does not wait
        gevent.spawn_later(0.05, b.sendall, b"hello")
        with gevent.Timeout(5):
            wait(event)                       # parks this greenlet until readable
        assert recv(10) == b"hello"
        b.close()
        with gevent.Timeout(5):
            wait(event)
        assert recv(10) == b""                # and wakes on the peer's close
    finally:
        a.close()


def test_plain_send_does_not_wait():
    a, b = gsocket.socketpair()
    try:
        sent = 0
        with pytest.raises(BlockingIOError):
            while True:                       # a full buffer raises at once instead of parking
                sent += gsock.plain(a).send(b"x" * 65536)
        assert sent > 0
    finally:
        a.close()
        b.close()


def test_check_passes_on_the_installed_gevent():
    gsock.check()
