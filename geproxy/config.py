"""Loading a configuration file: configobj syntax, `Include` of other files,
validation against the configspec derived from settings.SETTINGS, and one clear
error line (naming the key) for anything wrong."""

import os
import re
from types import SimpleNamespace

from configobj import ConfigObj, ConfigObjError, flatten_errors, get_extra_values
from validate import Validator

from .predixyconf import PredixyConfError, load_predixy, looks_like_predixy
from .settings import (ALIASES, AUTHORITY, BY_NAME, DATACENTER, FUNCTIONS, GROUPS, LATENCY, POOL, POOLS,
                       by_sentinel, configspec_lines, secret)
from .tls import CLIENT_FILES, NODE_FILES, TLSSettingError, client_context, node_tls

# A value quoted in an error message: ('Password abc'), "['a', 'b']"
QUOTED = re.compile(r"""\((['"]).*?\1\)|"[^"]*"|'[^']*'""")


class ConfigError(Exception):
    """A bad configuration; str() is the one line to show the operator."""


class Config:
    """Validated settings; top-level ones as attributes, the pool's under `.pool`."""

    def __init__(self, values, path=None):
        self.path = path
        self.pool_kind = next(p for p in POOLS if p in values)
        # the settings CONFIG GET/SET know by name: top level and this kind of pool's
        self.by_name = {k: s for k, s in BY_NAME.items() if s.section != POOL or self.pool_kind in s.pools}
        pool = values.pop(self.pool_kind)
        # a pool of groups: group name -> its nodes (empty when Sentinel names them), in file order
        groups = {k: v["Servers"] for k, v in list(pool.items()) if isinstance(v, dict)}
        for k in groups:
            del pool[k]
        self.pool = _Section(pool)
        self.pool.groups = groups
        # name -> settings of each [[subsection]]; an empty dict when the section is absent
        self.authority = {k: _Section(v) for k, v in values.pop(AUTHORITY[:-2], {}).items()}
        self.latency = {k: _Section(v) for k, v in values.pop(LATENCY[:-2], {}).items()}
        self.datacenters = {k: _Section(v) for k, v in values.pop(DATACENTER[:-2], {}).items()}
        self.__dict__.update(values)

    def parse(self, name, value):
        """(setting name, value) for a top-level or pool setting given by name
        (any case), validated like the file would be; raises ConfigError."""
        s = self.by_name.get(ALIASES.get(name, name).lower())
        if s is None:
            raise ConfigError("unknown setting %r" % name)
        check = s.check.split("(")[0]
        try:
            v = FUNCTIONS[check](value) if check in FUNCTIONS else Validator().check(s.check, value)
        except Exception as e:
            raise ConfigError("%s: %s" % (s.name, _hidden(e) if secret(s.name) else e)) from None
        return s.name, v

    def set(self, name, value):
        name, v = self.parse(name, value)
        target = self.pool if self.by_name[name.lower()].section == POOL else self
        setattr(target, name, v)

    def get(self, name):
        s = self.by_name[name.lower()]
        return getattr(self.pool if s.section == POOL else self, s.name)


class _Section:
    def __init__(self, values):
        self.__dict__.update(values)


def load(path, overrides=None):
    """Read, include, validate.  Raises ConfigError."""
    path = os.path.abspath(path)
    raw = _read(path, seen=set())
    for name, value in (overrides or {}).items():
        raw[name] = value
    for alias, name in ALIASES.items():
        if alias in raw:
            raw.setdefault(name, raw[alias])
            del raw[alias]
    pools = [p for p in POOLS if p in raw]
    if not pools:
        raise ConfigError("%s: missing section [%s] (with Servers = host:port, ...), or [%s] or [%s]" % (
            path, *POOLS))
    if len(pools) > 1:
        raise ConfigError("%s: [%s] and [%s]: a proxy serves one pool" % (path, pools[0], pools[1]))
    cfg = ConfigObj(raw, configspec=configspec_lines(pools[0]), list_values=True)
    result = cfg.validate(Validator(FUNCTIONS), preserve_errors=True)
    if result is not True:
        for sections, key, err in flatten_errors(cfg, result):
            name = ".".join(sections + [key or ""]).strip(".")
            if err is False:
                raise ConfigError("%s: %s is required" % (path, name))
            raise ConfigError("%s: %s: %s" % (path, name, _hidden(err) if secret(key or "") else err))
    for sections, key in get_extra_values(cfg):
        name = ".".join(list(sections) + [key])
        raise ConfigError("%s: unknown setting %s" % (path, name))
    local = cfg.get("LocalDC")
    if local and local not in cfg.get(DATACENTER[:-2], {}):
        raise ConfigError("%s: LocalDC: %r is not a [DataCenter] subsection" % (path, local))
    if pools[0] in GROUPS:
        _check_groups(path, pools[0], cfg[pools[0]])
    try:  # the files are read now: a bad one stops the start (and -t), not the first connection
        node_tls(SimpleNamespace(**cfg[pools[0]]))
    except TLSSettingError as e:
        raise ConfigError("%s: %s.%s" % (path, pools[0], e)) from None
    _check_listeners(path, cfg)
    return Config(cfg.dict(), path)


def _check_listeners(path, cfg):
    """Something to listen on, and a TLS listener that can work: its files are
    read now, so a bad one stops the start (and -t)."""
    if not cfg["Bind"] and not cfg["TLSBind"]:
        raise ConfigError("%s: Bind: empty, and no TLSBind: nothing to listen on" % path)
    if cfg["Bind"] and cfg["Bind"] == cfg["TLSBind"]:
        raise ConfigError("%s: TLSBind: the same address as Bind; give each its own" % path)
    try:
        client_context(SimpleNamespace(**cfg))
    except TLSSettingError as e:
        raise ConfigError("%s: %s" % (path, e)) from None


def _check_groups(path, kind, pool):
    groups = {k: v for k, v in pool.items() if isinstance(v, dict)}
    if not groups:
        raise ConfigError("%s: %s: no group: add one [[name]] subsection per group" % (path, kind))
    sentinels = by_sentinel(kind, pool.get("RefreshMethod"))
    if sentinels and not pool["Sentinels"]:
        raise ConfigError("%s: %s.Sentinels: needs at least one host:port" % (path, kind))
    for name, group in groups.items():
        if not sentinels and not group["Servers"]:
            raise ConfigError("%s: %s.%s.Servers: RefreshMethod fixed needs the group's nodes, master first" % (
                path, kind, name))
        if sentinels and group["Servers"]:
            raise ConfigError("%s: %s.%s.Servers: the Sentinels name this group's nodes; leave it out" % (
                path, kind, name))


def _read(path, seen):
    """The file as a dict, with its Include files merged under it (its own keys win).
    predixy's own brace format is read too, so predixy users keep their files."""
    if path in seen:
        raise ConfigError("%s: Include loop" % path)
    seen.add(path)
    try:
        with open(path, errors="replace") as f:
            if looks_like_predixy(f.read()):
                return _resolve(load_predixy(path), path)
    except PredixyConfError as e:
        raise ConfigError(_scrub(str(e))) from None
    except OSError as e:
        raise ConfigError("%s: cannot read: %s" % (path, e.strerror or e)) from None
    try:
        cfg = ConfigObj(path, file_error=True, list_values=True, interpolation=False)
    except (IOError, OSError) as e:
        raise ConfigError("%s: cannot read: %s" % (path, getattr(e, "strerror", None) or e))
    except ConfigObjError as e:
        raise ConfigError("%s: %s" % (path, _scrub(str(e)))) from None
    own = cfg.dict()
    includes = own.pop("Include", [])
    if isinstance(includes, str):
        includes = [includes]
    merged = {}
    for inc in includes:
        inc_path = os.path.join(os.path.dirname(path), inc)
        _merge(merged, _read(inc_path, seen))
    _merge(merged, own)
    return _resolve(merged, path)


def _hidden(err):
    """What was wrong with a password, without its value (a comma makes a list
    of it; a message quoting the value would print the password)."""
    if isinstance(err, list) or "list" in str(err) or "wrong type" in str(err):
        return "must be one value (a comma makes a list: quote the password); the value is not shown"
    return "invalid value (not shown)"


def _scrub(message):
    """A parser's message without the quoted line, when that line names a password."""
    if not secret(message):
        return message
    return QUOTED.sub("(the line is not shown: it names a password)", message)


def _resolve(values, path):
    """Relative paths in a file resolve against its own folder."""
    log = values.get("Log")
    if isinstance(log, str) and log and not os.path.isabs(log):
        values["Log"] = os.path.join(os.path.dirname(path), log)
    for key in CLIENT_FILES:
        if isinstance(values.get(key), str) and values[key] and not os.path.isabs(values[key]):
            values[key] = os.path.join(os.path.dirname(path), values[key])
    for pool in [values[k] for k in POOLS if isinstance(values.get(k), dict)]:
        for key in NODE_FILES:
            if isinstance(pool.get(key), str) and pool[key] and not os.path.isabs(pool[key]):
                pool[key] = os.path.join(os.path.dirname(path), pool[key])
    return values


def _merge(into, other):
    for k, v in other.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = v
