"""CLIENT, answered by the proxy about its own clients (the nodes only ever
see the proxy's connections): ID, GETNAME, SETNAME, SETINFO, INFO and LIST
with Redis's fields, KILL in all its forms, PAUSE/UNPAUSE held at the proxy,
UNBLOCK of a client waiting on a blocking command, REPLY ON|OFF|SKIP,
NO-EVICT/NO-TOUCH.  TRACKING is refused: invalidations would have to come
from every node the client's keys live on.

Under [Authority], a class that is not admin sees only itself in LIST and may
not KILL, PAUSE, UNPAUSE or UNBLOCK."""

import time


from . import greenlets, private
from .authority import ADMIN, NOPERM
from .pause import Pause, readonly_functions
from .resp import OK, bulk, command, error, integer, null, verbatim

PAUSE_MODES = (b"write", b"all")


class Unblocked(Exception):
    """Thrown into a session waiting on a blocking command (CLIENT UNBLOCK)."""

    def __init__(self, how):
        super().__init__(how)
        self.how = how


def handle(session, args):
    sub = args[1].lower().decode("utf-8", "replace") if len(args) > 1 else ""
    n = len(args)
    fn = SIMPLE.get((sub, n))
    if fn is not None:
        return fn(session, args)
    if sub in ADMIN_ONLY and not is_admin(session):
        return error(NOPERM % ("client|" + sub))
    if sub == "list":
        return list_(session, args)
    if sub == "kill" and n >= 3:
        return kill(session, args)
    if sub == "pause" and n in (3, 4):
        return pause(session, args)
    if sub == "unpause" and n == 2:
        return unpause(session)
    if sub == "unblock" and n in (3, 4):
        return unblock(session, args)
    if sub == "reply" and n == 3:
        return reply(session, args[2].lower())
    if sub in ("tracking", "caching", "getredir", "trackinginfo"):
        return error("ERR geproxy does not support CLIENT %s: client-side caching would need invalidations "
                     "from every node a client's keys live on" % sub.upper())
    if sub == "help":
        return b"*1\r\n" + bulk("CLIENT ID|GETNAME|SETNAME|SETINFO|INFO|LIST|KILL|PAUSE|UNPAUSE|UNBLOCK|REPLY|"
                                "NO-EVICT|NO-TOUCH, answered by geproxy about its own clients")
    if sub in KNOWN:
        return error("ERR wrong number of arguments for 'client|%s' command" % sub)
    return error("ERR unknown subcommand '%s'. Try CLIENT HELP." % args[1].decode("utf-8", "replace"))


def is_admin(session):
    grant = session.grant
    return grant is not None and grant.level >= ADMIN


def valid_name(name):
    return all(33 <= c <= 126 for c in name)


def setname(session, args):
    if not valid_name(args[2]):
        return error("ERR Client names cannot contain spaces, newlines or special characters.")
    session.name = args[2]
    return OK


def setinfo(session, args):
    attr = args[2].lower()
    if attr not in (b"lib-name", b"lib-ver"):
        return error("ERR Unrecognized option '%s'" % args[2].decode("utf-8", "replace"))
    if not valid_name(args[3]):
        return error("ERR %s cannot contain spaces, newlines or special characters." % attr.decode())
    session.lib[attr.decode()] = args[3]
    return OK


SIMPLE = {
    ("id", 2): lambda s, a: integer(s.id),
    ("getname", 2): lambda s, a: bulk(s.name) if s.name else null(s.proto),
    ("setname", 3): setname,
    ("setinfo", 4): setinfo,
    ("info", 2): lambda s, a: verbatim(describe(s, "client|info", len(command(*a))) + "\n", s.proto),
    ("no-evict", 3): lambda s, a: OK,
    ("no-touch", 3): lambda s, a: OK,
}
KNOWN = {name for name, _ in SIMPLE} | {"list", "kill", "pause", "unpause", "unblock", "reply"}
ADMIN_ONLY = {"kill", "pause", "unpause", "unblock"}


def describe(s, cmd=None, qbuf=0):
    """A CLIENT LIST / CLIENT INFO line with Redis's fields (qbuf: the size of
    the command being answered, for the client asking)."""
    now = time.time()
    ps = s.pubsub
    sets = ps.names.values() if ps is not None else ()
    sub = sum(len(v["channels"]) for v in sets)
    psub = sum(len(v["patterns"]) for v in sets)
    ssub = sum(len(v["shard"]) for v in sets)
    txn = s.txn
    in_multi = txn is not None and txn.in_multi
    flags = ("b" if s.blocked else "") + ("P" if sub or psub or ssub else "") + ("x" if in_multi else "") or "N"
    fd = s.sock.fileno() if not s.closed else -1
    return ("id=%d addr=%s laddr=%s fd=%d name=%s age=%d idle=%d flags=%s db=0 sub=%d psub=%d ssub=%d "
            "multi=%d qbuf=%d qbuf-free=0 argv-mem=0 multi-mem=0 rbs=%d rbp=0 obl=0 oll=%d omem=%d tot-mem=0 "
            "events=r cmd=%s user=%s redir=-1 resp=%d lib-name=%s lib-ver=%s" % (
                s.id, s.peer(), s.laddr, fd, s.name.decode("utf-8", "replace"), now - s.created,
                now - s.active, flags, sub, psub, ssub, len(txn.queued) if in_multi else -1, qbuf,
                s.proxy.cfg.BufSize, len(s.backlog), s.backlog_bytes, cmd or s.last_cmd or "NULL",
                user_of(s), s.proto,
                s.lib.get("lib-name", b"").decode("utf-8", "replace"),
                s.lib.get("lib-ver", b"").decode("utf-8", "replace")))


def user_of(s):
    """The Authority class or Redis ACL user the client logged in as; Redis's "default"."""
    if s.login is not None:
        return s.login[0].decode("utf-8", "replace")
    if not s.proxy.authority.enabled or s.grant is None:
        return "default"
    return s.grant.name


def _type_of(s):
    ps = s.pubsub
    return "pubsub" if ps is not None and ps.subscribed() else "normal"


def list_(session, args):
    sessions = list(session.proxy.sessions.values())
    if not is_admin(session):
        sessions = [session]
    i = 2
    while i < len(args):
        opt = args[i].lower()
        if opt == b"type" and i + 1 < len(args):
            kind = args[i + 1].lower().decode("utf-8", "replace")
            if kind not in ("normal", "pubsub", "master", "replica", "slave"):
                return error("ERR Unknown client type '%s'" % kind)
            sessions = [s for s in sessions if _type_of(s) == kind]
            i += 2
        elif opt == b"id" and i + 1 < len(args):
            try:
                ids = {int(a) for a in args[i + 1:]}
            except ValueError:
                return error("ERR Invalid client ID")
            sessions = [s for s in sessions if s.id in ids]
            i = len(args)
        else:
            return error("ERR syntax error")
    size = len(command(*args))
    return verbatim("".join((describe(s, "client|list", size) if s is session else describe(s)) + "\n"
                            for s in sessions), session.proto)


def kill(session, args):
    sessions = list(session.proxy.sessions.values())
    if len(args) == 3:  # CLIENT KILL addr:port
        addr = args[2].decode("utf-8", "replace")
        victims = [s for s in sessions if s.peer() == addr]
        if not victims:
            return error("ERR No such client")
        _close(victims, session)
        return OK
    if len(args) % 2:
        return error("ERR syntax error")
    skipme = True
    for opt, value in zip(args[2::2], args[3::2]):
        opt, text = opt.lower(), value.decode("utf-8", "replace")
        if opt == b"id":
            try:
                wanted = int(value)
                if wanted <= 0:
                    raise ValueError
            except ValueError:
                return error("ERR client-id should be greater than 0")
            sessions = [s for s in sessions if s.id == wanted]
        elif opt == b"addr":
            sessions = [s for s in sessions if s.peer() == text]
        elif opt == b"laddr":
            sessions = [s for s in sessions if s.laddr == text]
        elif opt == b"user":
            if not known_user(session, value):
                return error("ERR No such user '%s'" % text)
            sessions = [s for s in sessions if user_of(s) == text]
        elif opt == b"type":
            if text.lower() not in ("normal", "pubsub", "master", "replica", "slave"):
                return error("ERR Unknown client type '%s'" % text)
            sessions = [s for s in sessions if _type_of(s) == text.lower()]
        elif opt == b"skipme":
            if text.lower() not in ("yes", "no"):
                return error("ERR syntax error")
            skipme = text.lower() == "yes"
        elif opt == b"maxage":
            try:
                age = int(value)
            except ValueError:
                return error("ERR syntax error")
            now = time.time()
            sessions = [s for s in sessions if now - s.created >= age]
        else:
            return error("ERR syntax error")
    if skipme:
        sessions = [s for s in sessions if s is not session]
    _close(sessions, session)
    return integer(len(sessions))


def known_user(session, name: bytes) -> bool:
    """Is `name` a user here: `default`, an [Authority] class, or (without
    [Authority]) a Redis ACL user, whom a client is logged in as or the home
    master knows (ACL users are the nodes')."""
    authority = session.proxy.authority
    text = name.decode("utf-8", "replace")
    if text == "default" or any(g.name == text for g in authority.by_password.values()):
        return True
    if authority.enabled:
        return False
    if any(s.login is not None and s.login[0] == name for s in session.proxy.sessions.values()):
        return True
    home = session.proxy.pool.home()
    if home is None:
        return False
    reply = private.call_each([home], command("ACL", "GETUSER", name))[0]
    return reply[:1] in (b"*", b"%") and reply != b"*-1\r\n"


def close_users(session, users: list) -> None:
    """Close the clients logged in as these Redis ACL users, as Redis closes
    the connections of a user ACL DELUSER deletes (the one asking, after its reply)."""
    _close([s for s in session.proxy.sessions.values() if s.login is not None and s.login[0] in users], session)


def _close(sessions, me=None):
    """Close clients at once; the one asking (SKIPME no) after its reply, as Redis does."""
    for s in sessions:
        if s is me:
            s.closing = True
            continue
        s.hang_up()
        s.release()


def pause(session, args):
    try:
        ms = int(args[2])
        if ms < 0:
            raise ValueError
    except ValueError:
        return error("ERR timeout is not an integer or out of range")
    mode = args[3].lower() if len(args) == 4 else b"all"
    if mode not in PAUSE_MODES:
        return error("ERR syntax error")
    proxy = session.proxy
    old = proxy.pause
    until = time.monotonic() + ms / 1000.0
    writes_only = mode == b"write"
    if old is not None and time.monotonic() < old.until:  # as Redis: the longer, and the stricter, wins
        until = max(until, old.until)
        writes_only = writes_only and old.writes_only
        old.over.set()
    master = proxy.pool.home()
    listing = private.call_each([master], command("FUNCTION", "LIST"))[0] if master and writes_only else b"*0\r\n"
    proxy.pause = Pause(until, writes_only, readonly_functions(listing))
    greenlets.spawn_later(ms / 1000.0 + 0.001, _end_pause, proxy, proxy.pause)
    return OK


def _end_pause(proxy, p):
    if proxy.pause is p and time.monotonic() >= p.until:
        proxy.pause = None
        p.over.set()


def unpause(session):
    proxy = session.proxy
    if proxy.pause is not None:
        proxy.pause.over.set()
        proxy.pause = None
    return OK


def unblock(session, args):
    try:
        target = session.proxy.sessions.get(int(args[2]))
    except ValueError:
        return error("ERR value is not an integer or out of range")
    how = args[3].lower() if len(args) == 4 else b"timeout"
    if how not in (b"timeout", b"error"):
        return error("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
    if target is None or not target.blocked or target.greenlet is None:
        return integer(0)
    target.blocked = False
    target.greenlet.kill(Unblocked(how.decode()), block=False)
    return integer(1)


def reply(session, mode):
    if mode == b"on":
        session.mute = None
        session.update_mode()
        return OK
    if mode in (b"off", b"skip"):
        session.mute = mode.decode()
        session.update_mode()
        return b""  # CLIENT REPLY OFF|SKIP itself gets no reply
    return error("ERR syntax error")
