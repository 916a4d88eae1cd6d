"""RESP building blocks: encoders for the replies the proxy makes itself, and a
boundary finder for the replies it forwards.

Backend replies are forwarded byte for byte, so the only parsing they get is
`reply_end`: where does the reply that starts here end?  That keeps RESP3 types
(maps, sets, doubles, pushes, attributes) intact without the proxy knowing them.
"""

CRLF = b"\r\n"
OK = b"+OK\r\n"
PONG = b"+PONG\r\n"
NULL2 = b"$-1\r\n"
NULL3 = b"_\r\n"


class ProtocolError(Exception):
    """The peer sent bytes that are not RESP; the connection cannot continue."""


def error(msg):
    """An error reply; `msg` starts with its code, e.g. 'ERR ...' or 'CROSSSLOT ...'."""
    return b"-" + msg.replace("\r", " ").replace("\n", " ").encode() + CRLF


# Error replies more than one part of the proxy gives.
CROSSSLOT = error("CROSSSLOT Keys in request don't hash to the same slot")
NOT_READY = error("CLUSTERDOWN geproxy has not reached any cluster node yet")
SLOT_DOWN = error("CLUSTERDOWN Hash slot not served")


def server_failed(server):
    return error("ERR geproxy: server %s is marked failed, retrying in a moment" % server.addr)


def simple(text):
    return b"+" + text.encode() + CRLF


def integer(n):
    return b":%d\r\n" % n


def bulk(value):
    if value is None:
        return NULL2
    if isinstance(value, str):
        value = value.encode()
    return b"$%d\r\n%s\r\n" % (len(value), value)


def null(proto):
    return NULL3 if proto == 3 else NULL2


def array(encoded_items):
    """An array of already encoded replies."""
    return b"*%d\r\n" % len(encoded_items) + b"".join(encoded_items)


def mapping(pairs, proto):
    """A map of (key, value) already encoded; a flat array for RESP2 clients."""
    head = b"%%%d\r\n" % len(pairs) if proto == 3 else b"*%d\r\n" % (2 * len(pairs))
    return head + b"".join(k + v for k, v in pairs)


def verbatim(text, proto):
    """Text such as INFO: a verbatim string for RESP3, a bulk string for RESP2."""
    data = text.encode() if isinstance(text, str) else text
    if proto == 3:
        return b"=%d\r\ntxt:%s\r\n" % (len(data) + 4, data)
    return bulk(data)


def command(*args):
    """Encode a command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = b"%d" % a
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


# Reply type bytes, by how their length word is read.
_BULKS = frozenset(b"$=!")        # length-prefixed payload
_AGGREGATES = frozenset(b"*~>")    # N replies follow
_PAIRS = frozenset(b"%")           # 2N replies follow
_ATTRIBUTE = ord("|")              # 2N replies, then the reply they annotate


def reply_end(buf, pos=0):
    """Index just past the complete reply starting at `pos`, or -1 if `buf`
    does not hold all of it yet.  Raises ProtocolError on bytes that are not RESP."""
    size = len(buf)
    todo = 1
    while todo:
        if pos >= size:
            return -1
        eol = buf.find(CRLF, pos)
        if eol < 0:
            return -1
        kind = buf[pos]
        if kind in _BULKS:
            n = _length(buf, pos, eol)
            pos = eol + 2 + (n + 2 if n >= 0 else 0)
            if pos > size:
                return -1
            todo -= 1
        elif kind in _AGGREGATES:
            todo += _length(buf, pos, eol) - 1 if buf[pos + 1] != 45 else -1
            pos = eol + 2
        elif kind in _PAIRS:
            todo += 2 * _length(buf, pos, eol) - 1 if buf[pos + 1] != 45 else -1
            pos = eol + 2
        elif kind == _ATTRIBUTE:
            todo += 2 * _length(buf, pos, eol)
            pos = eol + 2
        elif kind in b"+-:_,#(":
            pos = eol + 2
            todo -= 1
        else:
            raise ProtocolError("unexpected reply type byte %r" % chr(kind))
    return pos


def _length(buf, pos, eol):
    try:
        return int(buf[pos + 1:eol])
    except ValueError:
        raise ProtocolError("bad length %r" % bytes(buf[pos + 1:eol])) from None
