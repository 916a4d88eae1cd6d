"""Every setting, declared once: name, section, validator, default, whether
CONFIG SET may change it online, and a one-line doc.  The configspec, `-t`,
the README's reference and CONFIG GET/SET all derive from this table.

Names are predixy's, so its users feel at home.
"""

import re

from validate import ValidateError


class Setting:
    __slots__ = ("name", "section", "check", "default", "doc", "online", "pools")

    def __init__(self, name, section, check, default, doc, online=False, pools=None):
        self.name, self.section, self.check = name, section, check
        self.default, self.doc, self.online = default, doc, online
        self.pools = pools or POOLS     # for a pool setting: the kinds of pool that take it

    @property
    def key(self):
        return "%s.%s" % (self.section, self.name) if self.section else self.name


POOL = "ClusterServerPool"         # pool settings are declared under this name, for every kind of pool
SENTINEL = "SentinelServerPool"
STANDALONE = "StandaloneServerPool"
POOLS = (POOL, SENTINEL, STANDALONE)    # a configuration has exactly one of them
GROUPS = (SENTINEL, STANDALONE)         # pools of groups: one [[subsection]] per group
GROUP = "group"                         # the settings of each group's [[subsection]]

AUTHORITY = "Authority/*"          # [Authority] with one [[subsection]] per client class
LATENCY = "LatencyMonitor/*"       # [LatencyMonitor] with one [[subsection]] per monitor
DATACENTER = "DataCenter/*"        # [DataCenter] with one [[subsection]] per data center


def by_sentinel(kind, refresh_method):
    """Does a pool of this kind find its groups' nodes through Sentinels?"""
    return kind == SENTINEL or refresh_method == "sentinel"


SETTINGS = [
    Setting("Name", None, "string(min=1)", "geproxy", "service name, shown by INFO"),
    Setting("Bind", None, "optional_address", "0.0.0.0:7617",
            "listen address: host:port, [v6]:port or a unix socket path (empty: TLSBind only)"),
    Setting("WorkerProcesses", None, "integer(min=1, max=64)", "1",
            "worker processes sharing the port (predixy's WorkerThreads is accepted as an alias)"),
    Setting("MaxMemory", None, "memsize", "0", "memory limit of the process: 0 (none), 100M, 1G", online=True),
    Setting("ClientTimeout", None, "integer(min=0)", "0", "close a client idle this many seconds (0: never)",
            online=True),
    Setting("ClientOutputLimit", None, "memsize", "64M",
            "replies buffered for a slow client: over it and reading nothing for 10s, or over 2x it, "
            "the client is closed", online=True),
    Setting("ClientMaxInflight", None, "integer(min=1)", "1024",
            "requests one client may have in flight; at the limit it is not read until half have been answered",
            online=True),
    Setting("ClientMaxInflightBytes", None, "memsize", "16M",
            "fewer requests in flight when replies are big: about this many reply bytes per client",
            online=True),
    Setting("GracefulTimeout", None, "duration", "30",
            "on SIGTERM, how long to wait for the replies of commands already sent before closing clients",
            online=True),
    Setting("BufSize", None, "integer(min=512, max=67108864)", "16384", "bytes read from a socket at a time"),
    Setting("Log", None, "string", "", "log file path; empty logs to stdout"),
    Setting("LogRotate", None, "logrotate", "", "rotate the log: 1d, 2h, 30m, 1G, 500M, combinable ('1d 2G')"),
    Setting("AllowMissLog", None, "boolean", "true", "may drop log lines under pressure rather than block",
            online=True),
    Setting("LogVerbSample", None, "integer(min=0)", "0", "log every N-th verbose line (0: none)", online=True),
    Setting("LogDebugSample", None, "integer(min=0)", "0", "log every N-th debug line (0: none)", online=True),
    Setting("LogInfoSample", None, "integer(min=0)", "1", "log every N-th info line (0: none)", online=True),
    Setting("LogNoticeSample", None, "integer(min=0)", "1", "log every N-th notice line (0: none)", online=True),
    Setting("LogWarnSample", None, "integer(min=0)", "1", "log every N-th warning (0: none)", online=True),
    Setting("LogErrorSample", None, "integer(min=0)", "1", "log every N-th error (0: none)", online=True),
    Setting("Password", POOL, "string", "", "password for every backend connection"),
    Setting("User", POOL, "string", "", "ACL user for every backend connection (with Password)"),
    Setting("MasterReadPriority", POOL, "integer(min=0, max=100)", "50", "read priority of masters"),
    Setting("StaticSlaveReadPriority", POOL, "integer(min=0, max=100)", "0",
            "read priority of replicas listed in Servers"),
    Setting("DynamicSlaveReadPriority", POOL, "integer(min=0, max=100)", "0",
            "read priority of replicas learned from the cluster"),
    Setting("RefreshInterval", POOL, "duration", "1", "how often the slot map is refreshed"),
    Setting("ServerTimeout", POOL, "duration", "0", "longest wait for a backend reply (0: no limit)"),
    Setting("ServerFailureLimit", POOL, "integer(min=1)", "10",
            "failures in a row after which a node is marked failed"),
    Setting("ServerRetryTimeout", POOL, "duration", "1", "how long a failed node is left alone before a retry"),
    Setting("KeepAlive", POOL, "integer(min=0)", "0", "TCP keepalive idle seconds on backend sockets (0: off)"),
    Setting("ServerTLS", POOL, "boolean", "false",
            "every backend connection (node links, private connections, the control connection, Sentinels) "
            "uses TLS"),
    Setting("ServerTLSCAFile", POOL, "string", "", "CA certificates (PEM) node certificates must chain to "
            "(empty: the system's)"),
    Setting("ServerTLSVerify", POOL, "boolean", "true",
            "verify node certificates: the chain, and ServerTLSName when set (off: tests only)"),
    Setting("ServerTLSCertFile", POOL, "string", "", "client certificate (PEM) for mutual TLS with the nodes "
            "(Redis asks for one unless tls-auth-clients is no)"),
    Setting("ServerTLSKeyFile", POOL, "string", "",
            "private key (PEM, unencrypted) of ServerTLSCertFile (empty: it is in ServerTLSCertFile)"),
    Setting("ServerTLSName", POOL, "string", "",
            "name every node certificate must carry, also sent as SNI (empty: the chain is checked, not the name)"),
    Setting("Servers", POOL, "addresses", None, "seed nodes, host:port, comma separated; one reachable is enough",
            pools=(POOL,)),
    Setting("Sentinels", POOL, "optional_addresses", "list()",
            "Redis Sentinels watching the groups, host:port, comma separated", pools=GROUPS),
    Setting("SentinelPassword", POOL, "string", "", "password of the Sentinels (none: they ask for none)",
            pools=GROUPS),
    Setting("RefreshMethod", POOL, "option('fixed', 'sentinel')", "fixed",
            "fixed: each group lists its nodes, the first is the master; sentinel: ask the Sentinels",
            pools=(STANDALONE,)),
    Setting("Databases", POOL, "integer(min=1, max=1024)", "1", "databases each group has: SELECT 0 .. n-1",
            pools=GROUPS),
    Setting("Hash", POOL, "option('crc16', 'atol')", "crc16", "hash of a key that picks its group",
            pools=GROUPS),
    Setting("HashTag", POOL, "hashtag", "", "two characters: only the part of a key between them is hashed "
            "(e.g. {}); empty: the whole key", pools=GROUPS),
    Setting("Distribution", POOL, "option('modula', 'random')", "modula",
            "modula: group = hash % groups; random: any group, command by command", pools=GROUPS),
    Setting("Servers", GROUP, "optional_addresses", "list()",
            "the group's nodes, master first (RefreshMethod fixed); from Sentinel otherwise"),
    Setting("LocalDC", None, "string", "", "the data center this proxy runs in (see [DataCenter])"),
    Setting("AddrPrefix", DATACENTER, "names", "list()", "node addresses starting with these are in this DC"),
    Setting("ReadPolicy", DATACENTER, "names", "list()",
            "from this DC, read priority per DC: 'bj 50, sh 20' (0 or absent: never)"),
    Setting("TLSBind", None, "optional_address", "",
            "TLS listen address for clients, beside Bind or instead of it (empty: no TLS listener)"),
    Setting("TLSCertFile", None, "string", "",
            "certificate chain (PEM) the TLS listener presents (required with TLSBind); re-read on SIGHUP"),
    Setting("TLSKeyFile", None, "string", "", "private key (PEM, unencrypted) of TLSCertFile (empty: it is in "
            "TLSCertFile); re-read on SIGHUP"),
    Setting("TLSCAFile", None, "string", "", "CA certificates (PEM) client certificates must chain to "
            "(needed by TLSAuthClients optional or require); re-read on SIGHUP"),
    Setting("TLSAuthClients", None, "option('off', 'optional', 'require')", "off",
            "client certificates: off (not asked), optional (checked when given), require"),
    Setting("TLSProtocols", None, "names", "list()",
            "TLS versions the listener accepts, neighbours, e.g. TLSv1.2 TLSv1.3 (empty: TLS 1.2 and newer)"),
    Setting("TLSCiphers", None, "string", "", "OpenSSL cipher list for TLS 1.2 and older (empty: Python's "
            "default; TLS 1.3's suites are OpenSSL's)"),
    Setting("TLSHandshakeTimeout", None, "duration", "10",
            "a client's TLS handshake must be done within this many seconds, else it is closed (0: no limit)",
            online=True),
    Setting("MetricsBind", None, "optional_address", "",
            "serve Prometheus metrics at http://ADDR/metrics (empty: off)"),
    Setting("AuthFailureLimit", None, "integer(min=0)", "10",
            "failed AUTHs after which a connection is closed (0: never); past the 2nd each reply waits longer",
            online=True),
    Setting("Password", AUTHORITY, "string", "", "password of this client class; none: what clients have before AUTH"),
    Setting("Mode", AUTHORITY, "option('read', 'write', 'admin')", "write",
            "read < write < admin (CONFIG, FLUSHALL and the like)"),
    Setting("KeyPrefix", AUTHORITY, "names", "list()", "keys must start with one of these (empty: any)"),
    Setting("ReadKeyPrefix", AUTHORITY, "names", "list()", "keys read must start with one of these"),
    Setting("WriteKeyPrefix", AUTHORITY, "names", "list()", "keys written must start with one of these"),
    Setting("UnsafeScripts", AUTHORITY, "boolean", "false",
            "let a class with key prefixes run Lua scripts and functions, which can reach keys they do not "
            "declare, outside the prefixes (off: they are refused for such a class)"),
    Setting("Commands", LATENCY, "names", "list('all')", "commands measured: all, or names; -name excludes"),
    Setting("TimeSpan", LATENCY, "spans", "list(100, 200, 500, 1000, 2000, 5000, 10000, 50000)",
            "histogram bucket bounds in microseconds"),
]

ALIASES = {"WorkerThreads": "WorkerProcesses"}

# The settings CONFIG GET/SET address by plain name: top level and the pool.
BY_NAME = {s.name.lower(): s for s in SETTINGS if not (s.section or "").endswith("/*") and s.section != GROUP}


def secret(name: str) -> bool:
    """Does a setting (or a line naming it) hold a password, whose value no message may show?
    (Password, SentinelPassword, an [Authority] class's Password, predixy's Auth.)"""
    low = name.lower()
    return "password" in low or low.lstrip().startswith("auth ")


def configspec_lines(pool=POOL):
    """The validate configspec for a file with the given kind of pool, derived from SETTINGS."""
    sections = {}
    for s in SETTINGS:
        if s.section == GROUP or (s.section == POOL and pool not in s.pools):
            continue
        sections.setdefault(s.section or "", []).append("%s = %s" % (s.name, _with_default(s)))
    lines = sections.pop("")
    for section, body in sorted(sections.items()):
        if section.endswith("/*"):
            lines += ["[%s]" % section[:-2], "[[__many__]]"] + body
        else:
            lines += ["[%s]" % (pool if section == POOL else section)] + body
            if section == POOL and pool in GROUPS:
                lines.append("[[__many__]]")
                lines += ["%s = %s" % (s.name, _with_default(s)) for s in SETTINGS if s.section == GROUP]
    return lines


def _with_default(s):
    if s.default is None:
        return s.check
    default = s.default if s.default.startswith("list(") else repr(s.default)
    if s.check.endswith(")"):
        return "%s, default=%s)" % (s.check[:-1], default)
    return "%s(default=%s)" % (s.check, default)


# ---- validator functions used by the configspec ----

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|m)?\s*$")
_DURATION_UNITS = {None: 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "m": 60.0}
_MEMSIZE = re.compile(r"^\s*(\d+)\s*([kKmMgG])?[bB]?\s*$")
_MEMSIZE_UNITS = {None: 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_ROTATE = re.compile(r"^(\d+)([dhmGM])$")


def _scalar(value):
    if isinstance(value, list):
        raise ValidateError("expected one value, got a list")
    return str(value)


def duration(value, default=None):
    """Seconds as a float, from '1', '500ms', '2s', '100us'."""
    m = _DURATION.match(_scalar(value))
    if not m:
        raise ValidateError("%r is not a duration (e.g. 1, 500ms, 2s)" % value)
    return float(m.group(1)) * _DURATION_UNITS[m.group(2)]


def memsize(value, default=None):
    """Bytes, from '0', '100M', '1G', '512k'."""
    m = _MEMSIZE.match(_scalar(value))
    if not m:
        raise ValidateError("%r is not a memory size (e.g. 0, 100M, 1G)" % value)
    return int(m.group(1)) * _MEMSIZE_UNITS[(m.group(2) or "").lower() or None]


def parse_address(text):
    """('host', port) for host:port or [v6]:port; (path, None) for a unix socket path."""
    text = text.strip()
    if text.startswith("/") or text.startswith("./"):
        return text, None
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("%r is not host:port, [v6]:port or a socket path" % text)
    return host, int(port)


def address(value, default=None):
    try:
        parse_address(_scalar(value))
    except ValueError as e:
        raise ValidateError(str(e))
    return str(value).strip()


def optional_address(value, default=None):
    return address(value) if _scalar(value).strip() else ""


def optional_addresses(value, default=None):
    items = value if isinstance(value, list) else [value]
    return addresses(items) if any(str(v).strip() for v in items) else []


def hashtag(value, default=None):
    tag = _scalar(value)
    if tag and len(tag) != 2:
        raise ValidateError("%r: a hash tag is two characters, e.g. {}" % tag)
    return tag


def names(value, default=None):
    """A list of words; one word is a list of one."""
    items = value if isinstance(value, list) else [value]
    return [str(v).strip() for v in items if str(v).strip()]


def spans(value, default=None):
    """Ascending bucket bounds, in microseconds."""
    try:
        bounds = [int(v) for v in names(value)]
    except ValueError:
        raise ValidateError("%r: bucket bounds are whole microseconds" % (value,)) from None
    if not bounds or bounds != sorted(set(bounds)) or bounds[0] <= 0:
        raise ValidateError("%r: bucket bounds must be positive and ascending" % (value,))
    return bounds


def addresses(value, default=None):
    items = value if isinstance(value, list) else [value]
    items = [str(v).strip() for v in items if str(v).strip()]
    if not items:
        raise ValidateError("needs at least one host:port")
    for item in items:
        try:
            if parse_address(item)[1] is None:
                raise ValueError("%r: seed nodes must be host:port" % item)
        except ValueError as e:
            raise ValidateError(str(e))
    return items


def logrotate(value, default=None):
    """('seconds', 'bytes') from predixy's LogRotate words: 1d, 2h, 30m, 1G, 500M."""
    words = value if isinstance(value, list) else str(value).split()
    seconds = size = 0
    for w in words:
        m = _ROTATE.match(w.strip())
        if not m:
            raise ValidateError("%r is not a rotation (1d, 1-24h, 1-1440m, nG, nM)" % w)
        n, unit = int(m.group(1)), m.group(2)
        if unit in "dhm":
            seconds = n * {"d": 86400, "h": 3600, "m": 60}[unit]
        else:
            size = n << (30 if unit == "G" else 20)
    return seconds, size


FUNCTIONS = {"duration": duration, "memsize": memsize, "address": address, "optional_address": optional_address,
             "addresses": addresses, "optional_addresses": optional_addresses, "hashtag": hashtag,
             "logrotate": logrotate, "names": names, "spans": spans}


def reference_markdown():
    """The README's configuration reference table, derived from SETTINGS."""
    rows = ["| Setting | Section | Default | Online | Meaning |", "| --- | --- | --- | --- | --- |"]
    for s in SETTINGS:
        default = "(required)" if s.default is None else "`%s`" % s.default if s.default != "" else "(empty)"
        section = (s.section or "top").replace("/*", " (each [[subsection]])")
        if s.section == POOL:
            section = "any pool" if s.pools == POOLS else " / ".join(s.pools)
        elif s.section == GROUP:
            section = "each group's [[subsection]]"
        rows.append("| %s | %s | %s | %s | %s |" % (s.name, section, default,
                                                    "yes" if s.online else "", s.doc))
    return "\n".join(rows)


if __name__ == "__main__":
    print(reference_markdown())
