"""CONFIG GET / SET / RESETSTAT: the proxy's own settings, from the same
declarations as the file (settings.py).  Only settings marked online can be
SET; passwords are never shown."""

from fnmatch import fnmatchcase

from .config import ConfigError
from .resp import OK, bulk, error, mapping
from .settings import BY_NAME

HIDDEN = frozenset(("password", "user"))


def show(value):
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, tuple):  # LogRotate: (seconds, bytes)
        return " ".join(w for w in (_seconds(value[0]), _bytes(value[1])) if w)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "%g" % value
    return str(value)


def _seconds(n):
    return "" if not n else "%dd" % (n // 86400) if n % 86400 == 0 else "%dh" % (n // 3600) \
        if n % 3600 == 0 else "%dm" % (n // 60)


def _bytes(n):
    return "" if not n else "%dG" % (n >> 30) if n % (1 << 30) == 0 else "%dM" % (n >> 20)


def handle(proxy, proto, args):
    """The reply, or None when a backend should answer (CONFIG GET of Redis's own settings)."""
    sub = args[1].lower() if len(args) > 1 else b""
    cfg = proxy.cfg
    if sub == b"get" and len(args) >= 3:
        patterns = [a.decode("utf-8", "replace").lower() for a in args[2:]]
        pairs = [(bulk(s.name), bulk(show(cfg.get(s.name)))) for key, s in BY_NAME.items()
                 if key not in HIDDEN and any(fnmatchcase(key, p) for p in patterns)]
        if not pairs:
            return None  # not ours (e.g. redis-benchmark's CONFIG GET save): a master answers
        return mapping(pairs, proto)
    if sub == b"set" and len(args) >= 4 and len(args) % 2 == 0:
        changes = []
        for name, value in zip(args[2::2], args[3::2]):
            name = name.decode("utf-8", "replace")
            s = BY_NAME.get(name.lower())
            if s is None:
                return error("ERR Unknown option or number of arguments for CONFIG SET - '%s'" % name)
            if not s.online:
                return error("ERR CONFIG SET failed: '%s' can not be changed online" % s.name)
            changes.append((s.name, value.decode("utf-8", "replace")))
        try:
            for name, value in changes:  # all valid, or none applied
                proxy.cfg.parse(name, value)
        except ConfigError as e:
            return error("ERR CONFIG SET failed: %s" % e)
        for name, value in changes:
            proxy.set_config(name, value)
        return OK
    if sub == b"resetstat" and len(args) == 2:
        proxy.reset_stats()
        return OK
    if sub == b"help":
        return b"*3\r\n" + bulk("CONFIG GET <pattern>") + bulk("CONFIG SET <name> <value> (online settings)") + \
            bulk("CONFIG RESETSTAT")
    return error("ERR unknown subcommand or wrong number of arguments for CONFIG. Try CONFIG HELP.")
