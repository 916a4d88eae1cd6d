"""Client request parsing: RESP arrays of bulk strings, and inline commands
(`PING`, `SET k v` typed into telnet).

Each command comes out as (args, raw): the arguments to route on and the exact
bytes to forward, so a request is never re-encoded on its way to a node.
Limits and messages follow Redis, so a client sees the errors it would see there.
"""

import re

import hiredis

from .resp import ProtocolError, command

MAX_BULK = 512 * 1024 * 1024      # Redis's proto-max-bulk-len
MAX_ARGS = 2 ** 31 - 1            # Redis 7's limit on multibulk length (INT_MAX)
MAX_INLINE = 64 * 1024            # an unterminated header or inline line longer than this is garbage


# hiredis allocates room for any aggregate count it is given, before the data: data
# with a count of 5+ digits (any aggregate type) takes the exact path, which only
# grows with the data that really arrives.
# (Aggregate type bytes are mapped to '*' first: a pattern with a literal start
# searches several times faster than one starting with a character class.)
_HUGE_COUNT = re.compile(rb"\*\+?\d{5}")
_AGGREGATES = bytes.maketrans(b">~|%", b"****")
# Bytes a canonical bulk argument of length n adds beyond n: "$<n>\r\n" and "\r\n".
_DIGITS = bytes(len(b"%d" % n) + 5 for n in range(1 << 16))   # bytes: 64 KiB, not a 512 KiB list
# A canonical array header "*<count>\r\n"; an empty array is not a command.
_HEAD = [None] + [len(b"%d" % n) + 3 for n in range(1, 1 << 12)]

# One hiredis reader for every client: _fast never switches greenlets and leaves it empty (or
# replaces it), and a reader per client would cost each idle client about 1 KiB.
_shared = hiredis.Reader()


class RequestParser:
    """Accumulates bytes from one client and cuts them into commands."""

    def __init__(self, max_bulk=MAX_BULK):
        self.buf = bytearray()
        self.max_bulk = max_bulk
        self._partial = None        # (count, args so far, offset) of a command still arriving

    def pending(self):
        """Bytes received but not yet part of a complete command."""
        return len(self.buf)

    def feed(self, data):
        """Add `data` and return (commands, error): the complete commands, and a
        ProtocolError when the bytes after them are not RESP (the caller answers
        the commands, then the error, then closes)."""
        if not self.buf and data[:1] == b"*" and not _HUGE_COUNT.search(data.translate(_AGGREGATES)):
            commands = self._fast(data)
            if commands is not None:
                return commands, None
        return self._feed(data)

    def _fast(self, data):
        """The common case, whole canonical RESP commands, parsed by hiredis.

        A canonical command's length follows from its arguments, and canonical
        encoding is the shortest one, so the lengths add up to len(data) exactly
        when every command is complete and canonical.  Then each command's raw
        bytes are a slice of data.  Anything else (a partial command, odd
        encodings, errors) returns None and takes the exact, slower path."""
        global _shared
        reader = _shared
        reader.feed(data)
        out = []
        pos = 0
        digits = _DIGITS
        try:
            while True:
                args = reader.gets()
                if args is False:
                    break
                size = _HEAD[len(args)]
                for a in args:
                    n = len(a)
                    size += n + digits[n]
                out.append((args, data[pos:pos + size]))
                pos += size
        except Exception:  # ProtocolError, odd types (TypeError), MemoryError: the exact path decides
            pos = -1
        if pos == len(data):
            return out
        _shared = hiredis.Reader()  # whatever it holds is not ours to keep
        return None

    def _feed(self, data):
        buf = self.buf
        buf += data
        out = []
        pos = 0
        err = None
        try:
            while pos < len(buf):
                if buf[pos] == 42:  # '*'
                    end = self._multibulk(buf, pos, out)
                else:
                    end = self._inline(buf, pos, out)
                if end < 0:
                    break
                pos = end
        except ProtocolError as e:
            err = e
            pos = len(buf)
        del buf[:pos]
        return out, err

    def _multibulk(self, buf, pos, out):
        """One array command at buf[pos:]; its end, or -1 while incomplete.  A
        command arriving in many reads resumes where the last read stopped
        (self._partial), so a huge one is parsed once, not once per read."""
        size = len(buf)
        if self._partial is not None and pos == 0:
            count, args, p = self._partial
            self._partial = None
        else:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                if size - pos > MAX_INLINE:
                    raise ProtocolError("too big mbulk count string")
                return -1
            count = _int(buf, pos + 1, eol, "invalid multibulk length")
            if count > MAX_ARGS:
                raise ProtocolError("invalid multibulk length")
            p = eol + 2
            if count <= 0:  # Redis ignores empty and null arrays
                return p
            args = []
        max_bulk = self.max_bulk
        while len(args) < count:
            if p >= size:
                break
            if buf[p] != 36:  # '$'
                raise ProtocolError("expected '$', got '%s'" % chr(buf[p]))
            eol = buf.find(b"\r\n", p)
            if eol < 0:
                if size - p > MAX_INLINE:
                    raise ProtocolError("too big bulk count string")
                break
            n = _int(buf, p + 1, eol, "invalid bulk length")
            if n < 0 or n > max_bulk:
                raise ProtocolError("invalid bulk length")
            if eol + 4 + n > size:
                break
            args.append(bytes(buf[eol + 2:eol + 2 + n]))
            p = eol + 4 + n
        else:
            out.append((args, bytes(buf[pos:p])))
            return p
        if pos == 0:
            self._partial = (count, args, p)
        return -1

    def _inline(self, buf, pos, out):
        eol = buf.find(b"\n", pos)
        if eol < 0:
            if len(buf) - pos > MAX_INLINE:
                raise ProtocolError("too big inline request")
            return -1
        args = split_inline(bytes(buf[pos:eol]).rstrip(b"\r"))
        if args:
            out.append((args, command(*args)))
        return eol + 1


def _int(buf, start, end, what):
    try:
        return int(buf[start:end])
    except ValueError:
        raise ProtocolError(what) from None


_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b", ord("a"): b"\a"}
_HEX = b"0123456789abcdefABCDEF"


def split_inline(line):
    """Split an inline command like Redis's sdssplitargs: blanks separate words,
    "double quotes" take \\n \\xHH escapes, 'single quotes' take \\' only."""
    args = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in b" \t":
            i += 1
        if i >= n:
            return args
        word = bytearray()
        quote = None
        while i < n:
            c = line[i]
            if quote == 34:  # inside "..."
                if c == 92 and i + 3 < n and line[i + 1] == 120 and line[i + 2] in _HEX and line[i + 3] in _HEX:
                    word.append(int(line[i + 2:i + 4], 16))
                    i += 4
                    continue
                if c == 92 and i + 1 < n:
                    word += _ESCAPES.get(line[i + 1], line[i + 1:i + 2])
                    i += 2
                    continue
                if c == 34:
                    if i + 1 < n and line[i + 1] not in b" \t":
                        raise ProtocolError("unbalanced quotes in request")
                    quote = None
                    i += 1
                    break
            elif quote == 39:  # inside '...'
                if c == 92 and i + 1 < n and line[i + 1] == 39:
                    word.append(39)
                    i += 2
                    continue
                if c == 39:
                    if i + 1 < n and line[i + 1] not in b" \t":
                        raise ProtocolError("unbalanced quotes in request")
                    quote = None
                    i += 1
                    break
            elif c in b" \t":
                break
            elif c in (34, 39) and not word:
                quote = c
                i += 1
                continue
            word.append(c)
            i += 1
        if quote is not None:
            raise ProtocolError("unbalanced quotes in request")
        args.append(bytes(word))
