"""A fake cluster node for fault tests: a small RESP server (threads, on
127.0.0.1, a free port) that claims every slot and answers GET, BLPOP and
SET by a script of odd replies, keyed by the key asked for.

What the proxy asks for its own use that the fake does not answer itself
(COMMAND, INFO, ...) is relayed to a real node of the test cluster, so the
proxy learns a real command table.
"""

import socket
import threading

from conftest import HOST, resp_end

STALL = object()        # never answer (nor anything after it on that connection)
CLOSE_MID = object()    # half a bulk reply, then close


def parse_commands(buf):
    """The complete RESP commands (lists of bytes) at the head of buf, and the rest."""
    out = []
    while buf:
        if buf[:1] != b"*":
            raise ValueError("fake node: inline commands not handled: %r" % buf[:40])
        nl = buf.find(b"\r\n")
        if nl < 0:
            break
        n, pos, args = int(buf[1:nl]), nl + 2, []
        for _ in range(n):
            nl = buf.find(b"\r\n", pos)
            if nl < 0:
                return out, buf
            size = int(buf[pos + 1:nl])
            if len(buf) < nl + 2 + size + 2:
                return out, buf
            args.append(buf[nl + 2:nl + 2 + size])
            pos = nl + 2 + size + 2
        out.append(args)
        buf = buf[pos:]
    return out, buf


def read_reply(sock):
    buf = b""
    while True:
        end = resp_end(buf) if buf else None
        if end is not None:
            return buf[:end]
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("relay closed")
        buf += chunk


class FakeNode:
    def __init__(self, relay, script=None):
        self.relay = relay                  # "host:port" of a real node
        self.script = dict(script or {})    # key -> reply bytes, STALL or CLOSE_MID
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((HOST, 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.addr = "%s:%d" % (HOST, self.port)
        self.accepted = 0
        self.conns = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self._closed = True
        self.lsock.close()
        with self._lock:
            for c in self.conns:
                try:
                    c.close()
                except OSError:
                    pass

    def value(self, key):
        """What GET of an unscripted key answers: the node's port and the key."""
        return b"%d:%s" % (self.port, key)

    # -- serving --

    def _accept(self):
        while not self._closed:
            try:
                conn, _ = self.lsock.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        relay = None
        buf = b""
        aborted = False
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
                commands, buf = parse_commands(buf)
                for args in commands:
                    name = args[0].upper()
                    if name in (b"GET", b"BLPOP", b"SET") and args[1] in self.script:
                        act = self.script[args[1]]
                        if act is STALL:
                            while conn.recv(65536):
                                pass
                            return
                        if act is CLOSE_MID:
                            conn.sendall(b"$10\r\nabc")
                            return
                        aborted |= name == b"SET"
                        conn.sendall(act)
                        continue
                    if name in (b"GET", b"BLPOP", b"SET", b"MULTI", b"EXEC", b"ASKING", b"READONLY",
                                b"PING") or name == b"CLUSTER" and args[1].upper() == b"NODES":
                        reply, aborted = self._answer(name, args, aborted)
                        conn.sendall(reply)
                        continue
                    if relay is None:
                        host, _, port = self.relay.rpartition(":")
                        relay = socket.create_connection((host, int(port)), timeout=5)
                    relay.sendall(b"*%d\r\n" % len(args) +
                                  b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
                    conn.sendall(read_reply(relay))
        except OSError:
            pass
        finally:
            conn.close()
            if relay is not None:
                relay.close()

    def _answer(self, name, args, aborted):
        if name == b"GET":
            v = self.value(args[1])
            return b"$%d\r\n%s\r\n" % (len(v), v), aborted
        if name == b"BLPOP":
            v = self.value(args[1])
            return b"*2\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(args[1]), args[1], len(v), v), aborted
        if name == b"SET":
            return b"+QUEUED\r\n", aborted
        if name == b"EXEC":
            reply = b"-EXECABORT Transaction discarded because of previous errors.\r\n" if aborted \
                else b"*1\r\n+OK\r\n"
            return reply, False
        if name == b"CLUSTER":
            text = b"%s %s:%d@%d myself,master - 0 0 1 connected 0-16383\n" % (
                b"f" * 40, HOST.encode(), self.port, self.port + 10000)
            return b"$%d\r\n%s\r\n" % (len(text), text), aborted
        if name == b"PING":
            return b"+PONG\r\n", aborted
        return b"+OK\r\n", aborted      # MULTI, ASKING, READONLY
