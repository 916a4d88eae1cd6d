"""Cluster redirections: the one reading of MOVED, ASK and TRYAGAIN for every
sender (shared node links, blocking commands, transactions).

A redirect is parsed exactly as Redis writes it, `-MOVED <slot> <host>:<port>`
or `-ASK ...`; anything else (a short line, a slot out of range, an address
with no port) is None, and the caller gives the client `malformed()` instead
of guessing: a guess either crashes a reader or sends a request to a node no
one named.
"""

import logging
import time
from typing import NamedTuple, Optional

from .resp import error
from .slots import SLOTS

log = logging.getLogger("geproxy.redirect")

MAX_REDIRECTS = 5                       # hops a request may take before the client gets an error
ASKING = b"*1\r\n$6\r\nASKING\r\n"      # sent right before a request that follows an ASK
# Error prefixes worth a second look on the hot path (NOSCRIPT: the sender reloads a known script).
RETRIED = (b"MOV", b"ASK", b"TRY", b"NOS")
MOVED, ASK, TRYAGAIN = b"MOVED", b"ASK", b"TRYAGAIN"

_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:%")
_LOG_EVERY = 10.0                       # seconds between two log lines about one node's bad redirects
_logged = {}                            # node -> when its last bad redirect was logged


class Redirect(NamedTuple):
    ask: bool       # ASK (this request only) rather than MOVED (the slot's new home)
    slot: int
    addr: str       # "host:port", the host bare (an IPv6 host without brackets), as CLUSTER NODES names nodes


def kind(reply: bytes) -> Optional[bytes]:
    """MOVED, ASK or TRYAGAIN when an error reply is one of them, else None."""
    if reply[:1] != b"-":
        return None
    word = reply[1:16].split(None, 1)
    word = word[0] if word else b""
    return word if word in (MOVED, ASK, TRYAGAIN) else None


def parse(reply: bytes, node: str) -> Optional[Redirect]:
    """A MOVED or ASK reply from `node` ("host:port"), or None when it is not
    exactly one.  An empty host (Redis 7 writes `:port` when it knows no
    endpoint for the target) means `node`'s host."""
    words = reply[1:].split()
    if reply[:1] != b"-" or len(words) != 3 or words[0] not in (MOVED, ASK):
        return None
    slot, where = words[1], words[2]
    if not (slot.isdigit() and len(slot) <= 5 and int(slot) < SLOTS):
        return None
    host, colon, port = where.decode("latin-1").rpartition(":")
    if not colon or not port.isdigit() or len(port) > 5 or not 0 < int(port) < 65536:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if ":" not in host:         # brackets are for IPv6 only
            return None
    if not host:
        host = node.rpartition(":")[0].strip("[]")
        if not host:
            return None
    if not _HOST_CHARS.issuperset(host):
        return None
    return Redirect(words[0] == ASK, int(slot), "%s:%d" % (host, int(port)))


def malformed(reply: bytes, node: str) -> bytes:
    """The client's reply for a redirect that `parse` refused; logged now and
    then (a node that sends one sends many)."""
    text = reply[1:].rstrip(b"\r\n")[:100].decode("utf-8", "replace")
    now = time.monotonic()
    if now - _logged.get(node, -_LOG_EVERY) >= _LOG_EVERY:
        _logged[node] = now
        log.warning("malformed redirect from %s: %r", node, text)
    return error("ERR geproxy: malformed redirect from %s: %s" % (node, text))


def too_many(reply: bytes) -> bytes:
    """The client's reply when a request has been redirected MAX_REDIRECTS times."""
    last = reply[1:].rstrip(b"\r\n")[:100].decode("utf-8", "replace")
    log.warning("giving up after %d redirections: %r", MAX_REDIRECTS, last)
    return error("ERR geproxy: too many cluster redirections (last: %s)" % last)
