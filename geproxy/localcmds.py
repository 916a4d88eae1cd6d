"""Commands the proxy answers itself: connection state (HELLO, SELECT, CLIENT,
QUIT, RESET) and things that only make sense for the proxy (INFO, CLUSTER
KEYSLOT).  Each handler takes (session, args) and returns reply bytes."""

from . import __version__, authfail, clientcmd, configcmd, info, private
from .authority import redis_user
from .login import Login
from .resp import NOT_READY, OK, PONG, bulk, error, integer, mapping, simple, verbatim
from .slots import key_slot

NOT_INT = error("ERR value is not an integer or out of range")



def _int(value):
    try:
        return int(value)
    except ValueError:
        return None


def ping(session, args):
    if len(args) > 2:
        return error("ERR wrong number of arguments for 'ping' command")
    return bulk(args[1]) if len(args) == 2 else PONG


def echo(session, args):
    return bulk(args[1])


def quit_(session, args):
    session.closing = True
    return OK


def select(session, args):
    """Database 0 only in a cluster, as Redis Cluster has it; 0 .. Databases-1
    in a pool of groups, each on node links that SELECTed it."""
    db = _int(args[1])
    if db is None:
        return NOT_INT
    pool = session.proxy.pool
    if pool.cluster:
        return OK if db == 0 else error("ERR SELECT is not allowed in cluster mode")
    if not 0 <= db < pool.cfg.Databases:
        return error("ERR DB index is out of range")
    session.db = db
    session.update_mode()
    return OK


def ok(session, args):
    return OK


NO_PASSWORD = error("ERR AUTH <password> called without any password configured for the default user. "
                    "Are you sure your configuration is correct?")


def auth(session, args):
    """AUTH [user] password.  With no password anywhere (no [Authority] class
    has one) the default user is Redis's `nopass` one: `AUTH password` is
    Redis's error for that (not a failed login: not counted or slowed), and
    `AUTH default anything` succeeds, as Redis answers both."""
    if len(args) > 3:
        return error("ERR syntax error")
    if len(args) == 2:
        if not session.proxy.authority.by_password:
            return NO_PASSWORD
        return _login(session, None, args[1]) or OK
    return _login(session, args[1], args[2]) or OK


def _login(session, user, password):
    """Switch the client to the class the password names or, without
    [Authority], to the Redis ACL user named (login.py); the error reply if none."""
    authority = session.proxy.authority
    if not authority.enabled and user is not None and user != b"default":
        return _redis_login(session, user, password)
    if user == b"default" and not authority.by_password and authority.default is not None:
        grant = authority.default       # a nopass default user takes any password, as in Redis
    else:
        grant = authority.authenticate(user, password)
    if grant is None:
        return _failed(session)
    session.grant, session.login = grant, None
    session.update_mode()
    return None


def _redis_login(session, user, password):
    """Log in as a Redis ACL user: a master must accept the pair first."""
    home = session.proxy.pool.home()
    if home is None:
        return NOT_READY
    try:
        private.PrivateConn(home, Login(session.proto, user, password)).release()  # fresh: it must log in now
    except private.ERRORS as e:
        if "WRONGPASS" in str(e):
            return _failed(session)
        return error("ERR geproxy: could not check the login with %s: %s" % (home.addr, e))
    session.grant, session.login = redis_user(user), (user, password)
    session.update_mode()
    return None


def _failed(session):
    """Counted, logged, slowed down, and past AuthFailureLimit the connection closes (authfail.py)."""
    session.proxy.stats.auth_failures += 1
    return authfail.failed(session, session.proxy.cfg.AuthFailureLimit)


def reset(session, args):
    session.release()
    session.proto = 2
    # RESET logs a client out, back to what it had before AUTH, as Redis returns to its default user
    session.login, session.grant = None, session.proxy.authority.default
    session.name = b""
    session.db = 0
    session.update_mode()
    return simple("RESET")


def hello(session, args):
    """The whole command is checked before anything changes: a syntax error
    after AUTH must not leave the client logged in."""
    proto = session.proto
    i = 1
    if len(args) > 1:
        proto = _int(args[1])
        if proto is None:
            return error("ERR Protocol version is not an integer or out of range")
        if proto not in (2, 3):
            return error("NOPROTO unsupported protocol version")
        i = 2
    name = login = None
    while i < len(args):
        opt = args[i].lower()
        if opt == b"auth" and i + 2 < len(args):
            login = args[i + 1], args[i + 2]
            i += 3
        elif opt == b"setname" and i + 1 < len(args):
            name = args[i + 1]
            i += 2
        else:
            return error("ERR Syntax error in HELLO option '%s'" % args[i].decode("utf-8", "replace"))
    if name is not None and not clientcmd.valid_name(name):
        return error("ERR Client names cannot contain spaces, newlines or special characters.")
    if login is not None:
        refused = _login(session, *login)
        if refused:
            return refused
    if session.grant is None:
        return error("NOAUTH HELLO must be called with the client already authenticated, otherwise the "
                     "HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and "
                     "select the RESP protocol version at the same time")
    session.proto = proto
    session.update_mode()
    if name is not None:
        session.name = name
    version = session.proxy.pool.version or __version__
    return mapping([
        (bulk("server"), bulk("redis")),
        (bulk("version"), bulk(version)),
        (bulk("proto"), integer(proto)),
        (bulk("id"), integer(session.id)),
        (bulk("mode"), bulk("standalone")),
        (bulk("role"), bulk("master")),
        (bulk("modules"), b"*0\r\n"),
    ], proto)


def client(session, args):
    return clientcmd.handle(session, args)


def cluster(session, args):
    sub = args[1].lower() if len(args) > 1 else b""
    if sub == b"keyslot" and len(args) == 3:
        return integer(key_slot(args[2]))
    return error("ERR CLUSTER %s is not available through geproxy, which hides the cluster"
                 % args[1].decode("utf-8", "replace").upper())


def config(session, args):
    return configcmd.handle(session.proxy, session.proto, args)


def monitor(session, args):
    session.proxy.monitor.watch(session)
    return OK


def info_(session, args):
    try:
        # key counts are every prefix's: a class with key prefixes gets INFO without them
        keyspace = session.grant is None or not session.grant.prefixed
        text = info.render(session.proxy, [a.decode("utf-8", "replace") for a in args[1:]], session.via, keyspace)
    except LookupError as e:
        return error("ERR %s" % e)
    return verbatim(text, session.proto)


HANDLERS = {
    "ping": ping, "echo": echo, "quit": quit_, "select": select, "hello": hello,
    "auth": auth, "readonly": ok, "readwrite": ok, "asking": ok, "reset": reset,
    "client": client, "cluster": cluster, "info": info_, "config": config, "monitor": monitor,
}


def handle(session, name, args):
    return HANDLERS[name](session, args)

