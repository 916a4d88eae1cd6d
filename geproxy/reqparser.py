"""Client request parsing: RESP arrays of bulk strings, and inline commands
(`PING`, `SET k v` typed into telnet).

Each command comes out as (args, raw): the arguments to route on and the bytes
to forward.  The proxy forwards what it parsed, so it must frame exactly where
Redis frames (networking.c): a header ends at its first '\\r', lengths are
string2ll's canonical digits, a bulk is followed by "\\r\\n".  Anything Redis
would read differently is a protocol error here and the client is closed, so an
accepted command's raw bytes are its canonical encoding (`command(*args)`), and
Redis runs exactly what the proxy routed and checked.  Limits and messages
follow Redis, so a client sees the errors it would see there.
"""

import re

import hiredis

from .resp import ProtocolError, command

MAX_BULK = 512 * 1024 * 1024      # Redis's proto-max-bulk-len
MAX_ARGS = 2 ** 31 - 1            # Redis 7's limit on multibulk length (INT_MAX)
MAX_INLINE = 64 * 1024            # an unterminated header or inline line longer than this is garbage
_LLONG = 2 ** 63                  # string2ll's range: [-2**63, 2**63 - 1]
_CANONICAL = re.compile(rb"(?:0|-?[1-9][0-9]{0,18})\Z")   # what string2ll accepts


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

    def __init__(self, max_bulk: int = MAX_BULK):
        self.buf = bytearray()
        self.max_bulk = max_bulk
        self._partial = None        # (count, args so far, offset) of a command still arriving

    def pending(self) -> int:
        """Bytes received but not yet part of a complete command."""
        return len(self.buf)

    def feed(self, data: bytes) -> tuple:
        """Add `data` and return (commands, error): the complete commands, and a
        ProtocolError when the bytes after them are not RESP (the caller answers
        the commands, then the error, then closes).

        A deep pipeline arrives cut anywhere: the exact path finishes the
        command a read cut, the fast path takes the whole canonical commands
        after it, and the exact path keeps the cut one at the end."""
        out = []
        if self.buf:
            out, err, data = self._feed(data, until=len(self.buf))
            if err is not None or self.buf:     # refused, or the cut command is still arriving
                return out, err
        if data[:1] == b"*" and not _HUGE_COUNT.search(data.translate(_AGGREGATES)):
            commands, pos = self._fast(data)
            if pos == len(data):
                return (out + commands if out else commands), None
            out += commands
            data = data[pos:]
        more, err, _ = self._feed(data)
        return (out + more if out else more), err

    def _fast(self, data):
        """Whole canonical RESP commands at the start of data, parsed by hiredis:
        (commands, where they end).

        hiredis reads lengths as string2ll does, but takes any RESP type where
        Redis takes only bulks.  So each command is proven canonical on the way:
        '*' where it starts, '$' where each argument starts and "\\r\\n" where it
        ends, at the offsets the canonical encoding of the arguments gives; a
        '$' there makes hiredis's bulk of that length the bytes Redis will read.
        Then each command's raw bytes are a slice of data.  What follows the
        proven commands (a cut command, odd encodings, errors) is left to the
        exact path."""
        global _shared
        reader = _shared
        reader.feed(data)
        out = []
        pos = 0
        digits = _DIGITS
        try:
            while True:
                args = reader.gets()
                if args is False or data[pos] != 42 or args.__class__ is not list:  # '*'
                    break
                end = pos + _HEAD[len(args)]
                for a in args:
                    if data[end] != 36:  # '$'
                        raise ValueError
                    end += len(a) + digits[len(a)]
                    if data[end - 2] != 13 or data[end - 1] != 10:
                        raise ValueError
                out.append((args, data[pos:end]))
                pos = end
        except Exception:  # ProtocolError, odd types (TypeError), MemoryError, not canonical: the exact path decides
            pass
        if pos != len(data):
            _shared = hiredis.Reader()  # whatever it holds is not ours to keep
        return out, pos

    def _feed(self, data, until=None):
        """The exact path over what is held and `data`: (commands, error, rest).
        With `until`, it stops at the first command boundary at or past that
        offset and hands back the bytes after it as `rest` (for the fast path)."""
        buf = self.buf
        buf += data
        out = []
        pos = 0
        err = None
        stop = len(buf) if until is None else until
        try:
            while pos < stop:
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
        rest = b""
        if until is not None and pos >= until:
            rest = bytes(buf[pos:])
            buf.clear()
        else:
            del buf[:pos]
        return out, err, rest

    def _multibulk(self, buf, pos, out):
        """One array command at buf[pos:]; its end, or -1 while incomplete.  A
        command arriving in many reads resumes where the last read stopped
        (self._partial), so a huge one is parsed once, not once per read."""
        size = len(buf)
        if self._partial is not None and pos == 0:
            count, args, p = self._partial
            self._partial = None
        else:
            eol = _line_end(buf, pos, "too big mbulk count string")
            if eol < 0:
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
            eol = _line_end(buf, p, "too big bulk count string")
            if eol < 0:
                break
            n = _int(buf, p + 1, eol, "invalid bulk length")
            if n < 0 or n > max_bulk:
                raise ProtocolError("invalid bulk length")
            if eol + 4 + n > size:
                break
            if buf[eol + 2 + n] != 13 or buf[eol + 3 + n] != 10:
                raise ProtocolError("expected CRLF after a bulk of %d bytes" % n)
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
        line = bytes(buf[pos:eol])
        if b"\0" in line:  # Redis's strchr stops at a NUL: it would never see this line end
            raise ProtocolError("NUL byte in an inline request")
        args = split_inline(line[:-1] if line.endswith(b"\r") else line)
        if args:
            out.append((args, command(*args)))
        return eol + 1


def _line_end(buf, start, too_big):
    """Where the header at buf[start:] ends: at its first '\\r', as Redis cuts it;
    -1 while that or the byte after it has not arrived.  Redis skips the byte
    after the '\\r' unseen; the proxy demands the '\\n'."""
    eol = buf.find(b"\r", start, start + MAX_INLINE + 1)
    if eol < 0:
        if len(buf) - start > MAX_INLINE:
            raise ProtocolError(too_big)
        return -1
    if eol + 1 >= len(buf):
        return -1
    if buf[eol + 1] != 10:
        raise ProtocolError("expected LF after CR in a length header")
    return eol


def _int(buf, start, end, what):
    """A length as Redis's string2ll reads it: canonical digits only."""
    if _CANONICAL.match(buf, start, end) is None:
        raise ProtocolError(what)
    n = int(buf[start:end])
    if end - start > 18 and not -_LLONG <= n < _LLONG:
        raise ProtocolError(what)
    return n


_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b", ord("a"): b"\a"}
_HEX = b"0123456789abcdefABCDEF"
_SPACE = b" \t\n\r\v\f"     # isspace(): skipped between words, and wanted after a closing quote
_ENDS = b" \t\n\r"           # what ends an unquoted word (\v and \f do not)


def split_inline(line: bytes) -> list:
    """Split an inline command exactly as Redis's sdssplitargs does: blanks
    separate words, a quote may open inside a word, "double quotes" take \\n
    \\xHH escapes, 'single quotes' take \\' only, and a closing quote must be
    followed by a blank.  (The caller has refused lines holding a NUL.)"""
    args = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in _SPACE:
            i += 1
        if i >= n:
            return args
        word = bytearray()
        quote = None
        while True:
            c = line[i] if i < n else None
            if quote == 34:  # inside "..."
                if c == 92 and i + 3 < n and line[i + 1] == 120 and line[i + 2] in _HEX and line[i + 3] in _HEX:
                    word.append(int(line[i + 2:i + 4], 16))
                    i += 3
                elif c == 92 and i + 1 < n:
                    i += 1
                    word += _ESCAPES.get(line[i], line[i:i + 1])
                elif c == 34:
                    if i + 1 < n and line[i + 1] not in _SPACE:
                        raise ProtocolError("unbalanced quotes in request")
                    i += 1
                    break
                elif c is None:
                    raise ProtocolError("unbalanced quotes in request")
                else:
                    word.append(c)
            elif quote == 39:  # inside '...'
                if c == 92 and i + 1 < n and line[i + 1] == 39:
                    i += 1
                    word.append(39)
                elif c == 39:
                    if i + 1 < n and line[i + 1] not in _SPACE:
                        raise ProtocolError("unbalanced quotes in request")
                    i += 1
                    break
                elif c is None:
                    raise ProtocolError("unbalanced quotes in request")
                else:
                    word.append(c)
            elif c is None or c in _ENDS:
                i += 1
                break
            elif c == 34 or c == 39:
                quote = c
            else:
                word.append(c)
            i += 1
        args.append(bytes(word))
