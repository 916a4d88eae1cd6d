"""RESP building blocks: encoders for the replies the proxy makes itself.

Backend replies are forwarded byte for byte; framer.py finds where each ends.
"""

import hiredis

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


def decode(raw):
    """One whole reply as Python values (hiredis), for the few the proxy reads itself."""
    reader = hiredis.Reader()
    reader.feed(raw)
    return reader.gets()
