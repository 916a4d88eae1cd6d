"""The reply framer: cuts a RESP2/RESP3 reply stream into whole replies, as
bytes, for every reader of a backend stream (node links, private connections,
pub/sub) and for splitting a complete aggregate into its elements.

It is incremental: state survives between reads, so each byte is scanned
once, whatever the reply's size and however the stream is split, and a reply
is handed over as soon as its last byte is in, never later.  Two things keep
big replies cheap: a bulk payload is skipped by its length (its chunks kept in
a list and joined once), and the already scanned head of a big aggregate is
parked in that list too, so a read only ever joins with the unscanned tail of
one element header.

Replies are not decoded: the proxy forwards them byte for byte, so the
framer only needs each type's shape:
  + - : _ , # (   one line
  $ = !           length line, then that many bytes and CRLF ($-1: null)
  * ~ >           N replies follow (*-1: null)
  %               2N replies follow
  |               an attribute: 2N replies, then the reply it annotates
"""

from .resp import ProtocolError

_LINE = frozenset(b"+-:_,#(")
_BULK = frozenset(b"$=!")
_ARRAY = frozenset(b"*~>")
_MAP = 37        # '%'
_ATTR = 124      # '|'
# Counts beyond these are not RESP (hiredis's own limits): a length of -2 or a
# count of 2**40 would leave the framer waiting forever for a reply's end.
MAX_ELEMENTS = (1 << 32) - 1


class Framer:
    __slots__ = ("tail", "parts", "todo", "skip")

    def __init__(self):
        self.tail = b""      # bytes not scanned yet: the start of an unfinished element
        self.parts = []      # scanned bytes of the unfinished reply, joined when it completes
        self.todo = 0        # elements the unfinished reply still needs (0: between replies)
        self.skip = 0        # bulk payload bytes (with CRLF) still to pass

    def pending(self):
        """True while part of a reply has arrived but not all of it."""
        return bool(self.todo or self.tail or self.skip)

    def feed(self, data):
        """Take the next bytes of the stream; return the replies they complete, in order."""
        out = []
        parts = self.parts
        todo = self.todo
        if self.skip:
            skip = self.skip
            if len(data) < skip:
                parts.append(data)
                self.skip = skip - len(data)
                return out
            parts.append(data[:skip])
            self.skip = 0
            buf = data[skip:] if skip else data
            if not todo:  # that bulk ended the reply
                out.append(b"".join(parts))
                parts.clear()
        elif self.tail:
            buf = self.tail + data
        else:
            buf = data
        size = len(buf)
        pos = cur = 0    # cur: where the unfinished reply's unparked bytes begin
        find = buf.find
        try:
            while pos < size:
                if not todo:
                    todo = 1
                    cur = pos
                kind = buf[pos]
                eol = find(b"\r\n", pos)
                if eol < 0:
                    break
                if kind in _BULK:
                    n = int(buf[pos + 1:eol])
                    if n >= 0:
                        end = eol + n + 4
                    elif n == -1:
                        end = eol + 2
                    else:
                        raise ValueError
                    todo -= 1
                    if end > size:  # the payload is still coming: skip it by its length
                        parts.append(buf[cur:] if cur else buf)
                        self.skip = end - size
                        self.todo = todo
                        self.tail = b""
                        return out
                    pos = end
                elif kind in _LINE:
                    pos = eol + 2
                    todo -= 1
                elif kind in _ARRAY:
                    n = int(buf[pos + 1:eol])
                    if not -1 <= n <= MAX_ELEMENTS:
                        raise ValueError
                    todo += n - 1 if n > 0 else -1
                    pos = eol + 2
                elif kind == _MAP:
                    n = int(buf[pos + 1:eol])
                    if not -1 <= n <= MAX_ELEMENTS:
                        raise ValueError
                    todo += 2 * n - 1 if n > 0 else -1
                    pos = eol + 2
                elif kind == _ATTR:
                    n = int(buf[pos + 1:eol])
                    if not 0 <= n <= MAX_ELEMENTS:
                        raise ValueError
                    todo += 2 * n
                    pos = eol + 2
                else:
                    raise ProtocolError("unexpected reply type byte %r" % chr(kind))
                if not todo:
                    if parts:
                        parts.append(buf[cur:pos])
                        out.append(b"".join(parts))
                        parts.clear()
                    else:
                        out.append(buf if pos == size and not cur else buf[cur:pos])
        except ValueError:  # not a number, or one out of range
            raise ProtocolError("bad length %r" % bytes(buf[pos + 1:eol][:40])) from None
        # Out of bytes in the middle of an element header or line.
        if todo:
            if pos > cur:  # park the finished elements of this reply
                parts.append(buf[cur:pos])
            self.tail = buf[pos:]
        else:
            self.tail = b""
        self.todo = todo
        return out


def split(data, pos=0):
    """The whole replies in `data` from `pos` (e.g. an aggregate's elements)."""
    framer = Framer()
    out = framer.feed(data[pos:] if pos else data)
    if framer.pending():
        raise ProtocolError("truncated reply")
    return out


def elements(reply):
    """The raw elements of a complete aggregate reply (array, set, push; a map's
    keys and values alternate)."""
    head = reply.find(b"\r\n")
    return split(reply, head + 2)
