"""A request in flight: the bytes to send, and where its reply goes.

The reply arrives on a node link's reader greenlet.  Redirections (MOVED, ASK,
TRYAGAIN) are followed from there, without waking the client's session; only
a final reply is handed to the owner.
"""


class Request:
    __slots__ = ("raw", "reply", "owner", "slot", "redirects", "proto")

    def __init__(self, owner, raw, slot, proto):
        self.raw = raw
        self.reply = None
        self.owner = owner          # has request_done() and router: the session, or a parent request
        self.slot = slot
        self.redirects = 0
        self.proto = proto

    def done(self, reply):
        """Take a reply.  (Node links set .reply directly for non-error replies.)"""
        if reply[0] == 45 and reply[1:4] in (b"MOV", b"ASK", b"TRY") and self.owner.router.redirect(self, reply):
            return
        self.reply = reply
        self.owner.request_done()


class _Discard:
    """Owner of the ASKING that precedes a request sent after an ASK redirection:
    its +OK is swallowed."""

    def request_done(self):
        pass


ASKING = Request(_Discard(), b"*1\r\n$6\r\nASKING\r\n", None, None)
