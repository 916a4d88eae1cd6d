"""CLIENT PAUSE, held at the proxy: which commands wait, and until when.

Under PAUSE WRITE a command waits when Redis would make it wait: it writes or
may replicate (SET, PUBLISH, PFCOUNT); EXEC when its transaction does; a script
unless it says it writes nothing (EVAL_RO, FCALL_RO, a `#!lua flags=no-writes`
shebang, a function registered with the no-writes flag).  PAUSE ALL holds
everything.  A client waiting here counts as blocked (INFO blocked_clients),
as a paused client does on Redis.
"""

import time

from gevent.event import Event

from .resp import decode

# Redis 7.0 makes these wait under PAUSE WRITE (its may-replicate flag, which COMMAND does not show).
MAY_REPLICATE = frozenset(("publish", "spublish", "pfcount", "eval", "evalsha", "fcall"))


class Pause:
    def __init__(self, until, writes_only, readonly_functions=frozenset()):
        self.until = until
        self.writes_only = writes_only
        self.readonly_functions = readonly_functions   # names of no-writes functions, asked at the start
        self.over = Event()

    def holds(self, cmd, args, session):
        """Must this command wait?  (Unknown commands pass: they fail anyway.)"""
        if time.monotonic() >= self.until:
            return False
        if not self.writes_only:
            return True
        if cmd is None:
            return False
        if cmd.name == "exec":
            txn = session.txn
            return txn is not None and txn.in_multi and txn.writes
        return writes(cmd, args, session.sender.scripts, self.readonly_functions)

    def wait(self):
        self.over.wait(max(0.0, self.until - time.monotonic()))


def writes(cmd, args, scripts, readonly_functions=frozenset()):
    """Does this command (top-level table entry) write, as CLIENT PAUSE WRITE sees it?"""
    name = cmd.name
    if name in ("eval", "evalsha") and len(args) > 1:
        body = args[1] if name == "eval" else scripts.get(args[1])
        return body is None or not _declares_no_writes(body)
    if name == "fcall" and len(args) > 1:
        return args[1] not in readonly_functions
    return "write" in cmd.flags or name in MAY_REPLICATE


def _declares_no_writes(body):
    """A script's shebang line says flags=...no-writes...?"""
    if not body.startswith(b"#!"):
        return False
    line = body.split(b"\n", 1)[0]
    for word in line.split()[1:]:
        if word.startswith(b"flags="):
            return b"no-writes" in word[6:].split(b",")
    return False


def readonly_functions(reply):
    """Names of the functions flagged no-writes, from a FUNCTION LIST reply."""
    names = set()
    for lib in decode(reply) if reply[:1] in (b"*", b"%", b"~") else ():
        lib = _as_dict(lib)
        for fn in lib.get(b"functions") or ():
            fn = _as_dict(fn)
            if b"no-writes" in (fn.get(b"flags") or ()):
                names.add(fn.get(b"name"))
    return frozenset(names)


def _as_dict(value):
    if isinstance(value, dict):
        return value
    return dict(zip(value[::2], value[1::2])) if isinstance(value, list) else {}
