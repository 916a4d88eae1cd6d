"""gsock.py leans on gevent socket internals; these fail loudly if a gevent
release changes them (requirements.txt pins the tested releases).  The same
reader and sender serve TLS sockets: bytes go through the SSL object, a wait
does not park while decrypted bytes are pending, and what a sender did not
take can be finished by gevent's own send/sendall (the session's and node
link's slow paths)."""

import random
import ssl

import gevent
import pytest
from gevent import socket as gsocket
from gevent import ssl as gssl

from geproxy import gsock
from tlshelp import make_ca, make_cert

BIG = 3 * 1024 * 1024 + 12345   # over 1 MiB: many TLS records, more than a socket buffer holds


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("gsock-certs")
    ca = make_ca(str(d))
    return make_cert(str(d), "server", ca), ca


def tls_pair(certs):
    """(server side, client side), both gevent SSL sockets, handshake done."""
    server_cert, ca = certs
    a, b = gsocket.socketpair()
    sctx = gssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(server_cert.cert, server_cert.key)
    cctx = gssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.load_verify_locations(ca.cert)
    s = sctx.wrap_socket(a, server_side=True, do_handshake_on_connect=False)
    c = cctx.wrap_socket(b, server_hostname="localhost", do_handshake_on_connect=False)
    with gevent.Timeout(10):
        gevent.joinall([gevent.spawn(s.do_handshake), gevent.spawn(c.do_handshake)], raise_error=True)
    return s, c


def plain_pair(_certs=None):
    return gsocket.socketpair()


def payload(n, seed):
    return random.Random(seed).randbytes(n)


def send_nonblocking(sock, data, rnd):
    """Send `data` in random pieces with gsock.sender, waiting for room when it
    takes nothing.  As its callers do, what it did not take is offered again,
    with more behind it or not, never less."""
    send = gsock.sender(sock)
    pos = end = 0
    while pos < len(data):
        end = max(end, pos + rnd.choice((1, 7, 1000, 16384, 16385, 70000, 1 << 20)))
        try:
            pos += send(data[pos:end])
        except BlockingIOError:
            sock._wait(sock._write_event)


def read_exactly(sock, n, rnd):
    recv, wait, event = gsock.reader(sock)
    got = []
    size = 0
    while size < n:
        wait(event)
        try:
            data = recv(rnd.choice((1, 13, 512, 4096, 16384, 65536)))
        except BlockingIOError:
            continue
        assert data, "early end after %d of %d bytes" % (size, n)
        got.append(data)
        size += len(data)
    return b"".join(got)


@pytest.mark.parametrize("pair", [plain_pair, tls_pair], ids=["plain", "tls"])
def test_big_payloads_both_ways_in_random_pieces(certs, pair):
    a, b = pair(certs)
    try:
        for seed in range(3):
            rnd = random.Random(seed)
            up, down = payload(BIG, seed), payload(BIG // 2 + seed, seed + 100)
            jobs = [gevent.spawn(send_nonblocking, a, up, random.Random(seed + 1)),
                    gevent.spawn(read_exactly, b, len(up), rnd),
                    gevent.spawn(send_nonblocking, b, down, random.Random(seed + 2)),
                    gevent.spawn(read_exactly, a, len(down), random.Random(seed + 3))]
            with gevent.Timeout(60):
                gevent.joinall(jobs, raise_error=True)
            assert jobs[1].value == up
            assert jobs[3].value == down
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("finish", ["send", "sendall"])
@pytest.mark.parametrize("pair", [plain_pair, tls_pair], ids=["plain", "tls"])
def test_what_the_sender_left_is_finished_by_gevent(certs, pair, finish):
    """The session's writer finishes with sock.send, the node link's with
    sock.sendall (which cuts 1 MiB chunks): both from where the sender stopped."""
    a, b = pair(certs)
    try:
        data = payload(BIG, 7)
        try:
            sent = gsock.sender(a)(data)   # the peer reads nothing yet: the buffer fills
        except BlockingIOError:
            sent = 0
        assert sent < len(data)

        def rest():
            view = memoryview(data)[sent:]
            if finish == "sendall":
                a.sendall(view)
            else:
                while view:
                    view = view[a.send(view):]
        jobs = [gevent.spawn(rest), gevent.spawn(read_exactly, b, len(data), random.Random(1))]
        with gevent.Timeout(60):
            gevent.joinall(jobs, raise_error=True)
        assert jobs[1].value == data
    finally:
        a.close()
        b.close()


def test_tls_wait_returns_while_decrypted_bytes_are_pending(certs):
    s, c = tls_pair(certs)
    try:
        c.sendall(b"x" * 16000)                 # one TLS record
        recv, wait, event = gsock.reader(s)
        with gevent.Timeout(5):
            wait(event)
        assert recv(100) == b"x" * 100          # the rest of the record stays in the SSL object
        assert s.pending() == 15900
        with gevent.Timeout(2):                 # nothing more comes on the socket: a plain wait would hang
            wait(event)
        assert recv(65536) == b"x" * 15900
        with pytest.raises(BlockingIOError):
            recv(10)                            # nothing there: no waiting either
    finally:
        s.close()
        c.close()


def test_tls_end_of_stream_reads_empty(certs):
    for how in ("close_notify", "close"):
        s, c = tls_pair(certs)
        try:
            if how == "close_notify":
                gevent.spawn(c.unwrap)          # the client says goodbye at the TLS level
            else:
                c.close()                        # or just goes
            recv, wait, event = gsock.reader(s)
            with gevent.Timeout(5):
                while True:
                    wait(event)
                    try:
                        assert recv(100) == b""
                        break
                    except BlockingIOError:
                        continue
        finally:
            s.close()
            c.close()


def test_tls_sockets_are_told_apart(certs):
    s, c = tls_pair(certs)
    a, b = gsocket.socketpair()
    try:
        assert gsock.is_tls(s) and gsock.is_tls(c)
        assert not gsock.is_tls(a)
        assert gsock.sender(a) == a._sock.send     # the plain path is the plain socket's own send
        assert gsock.reader(a)[0] == a._sock.recv
    finally:
        for x in (s, c, a, b):
            x.close()


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


@pytest.mark.parametrize("pair", [plain_pair, tls_pair], ids=["plain", "tls"])
def test_send_does_not_wait(certs, pair):
    a, b = pair(certs)
    try:
        send = gsock.sender(a)
        sent = 0
        with pytest.raises(BlockingIOError):
            with gevent.Timeout(10):
                while True:                       # a full buffer raises at once instead of parking
                    sent += send(b"x" * 65536)
        assert sent > 0
    finally:
        a.close()
        b.close()


def test_check_passes_on_the_installed_gevent():
    gsock.check()
