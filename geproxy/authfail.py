"""Failed AUTH: counted, logged (sampled), slowed and cut off per connection.

A client guessing passwords on one connection gets a growing delay before each
WRONGPASS once it has failed twice, and after AuthFailureLimit failures the
connection is closed, so a loop of thousands of AUTHs a second gets a few
tries, not thousands.  A successful AUTH does not forgive earlier failures: a
client knowing one class's password could otherwise reset the count between
guesses at another's.  The log keeps at most a few lines a second, so a flood
of bad passwords cannot fill the disk.
"""

import logging
import time

import gevent

from .authority import WRONGPASS
from .resp import error

log = logging.getLogger("geproxy.auth")

TOO_MANY = error("ERR geproxy: too many failed AUTH attempts on this connection; closing it")
FREE = 2            # failures answered at once (typos happen)
FIRST_DELAY = 0.05  # seconds before the reply to the first failure past FREE, doubling each time
MAX_DELAY = 1.0


class SampledLog:
    """At most `per_second` lines a second, then one line saying how many were
    left out."""

    def __init__(self, what="failed AUTH from %s", per_second=5):
        self.what, self.per_second = what, per_second
        self.second, self.count, self.dropped = 0, 0, 0

    def note(self, peer: str) -> None:
        now = int(time.time())
        if now != self.second:
            if self.dropped:
                log.warning("%d more lines like '%s' not logged", self.dropped, self.what % "...")
            self.second, self.count, self.dropped = now, 0, 0
        self.count += 1
        if self.count <= self.per_second:
            log.warning(self.what, peer)
        else:
            self.dropped += 1


FAILED_AUTH = SampledLog()
CLOSED = SampledLog("closing %s: too many failed AUTH attempts")


def failed(session, limit: int) -> bytes:
    """The reply to one more failed AUTH on `session`: WRONGPASS after a delay
    growing with the failures so far, or TOO_MANY (the session closes after
    it) at the `limit`th (0: never closed)."""
    FAILED_AUTH.note(session.peer())
    n = session.auth_failures = session.auth_failures + 1
    if limit and n >= limit:
        CLOSED.note(session.peer())
        session.closing = True
        return TOO_MANY
    if n > FREE:
        gevent.sleep(min(FIRST_DELAY * 2 ** (n - FREE - 1), MAX_DELAY))
    return WRONGPASS
