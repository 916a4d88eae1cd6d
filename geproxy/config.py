"""Loading a configuration file: configobj syntax, `Include` of other files,
validation against the configspec derived from settings.SETTINGS, and one clear
error line (naming the key) for anything wrong."""

import os

from configobj import ConfigObj, ConfigObjError, flatten_errors, get_extra_values
from validate import Validator

from .settings import ALIASES, BY_NAME, FUNCTIONS, POOL, configspec_lines


class ConfigError(Exception):
    """A bad configuration; str() is the one line to show the operator."""


class Config:
    """Validated settings; top-level ones as attributes, the pool's under `.pool`."""

    def __init__(self, values, path=None):
        self.path = path
        pool = values.pop(POOL)
        self.__dict__.update(values)
        self.pool = _Section(pool)

    def set(self, name, value):
        """Set one setting by name (case-insensitive), validating it like the file would."""
        s = BY_NAME.get(ALIASES.get(name, name).lower())
        if s is None:
            raise ConfigError("unknown setting %r" % name)
        check = s.check.split("(")[0]
        if check in FUNCTIONS:
            v = FUNCTIONS[check](value)
        else:
            v = Validator().check(s.check, value)
        target = self.pool if s.section == POOL else self
        setattr(target, s.name, v)


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
    if POOL not in raw:
        raise ConfigError("%s: missing section [%s] (with Servers = host:port, ...)" % (path, POOL))
    cfg = ConfigObj(raw, configspec=configspec_lines(), list_values=True)
    result = cfg.validate(Validator(FUNCTIONS), preserve_errors=True)
    if result is not True:
        for sections, key, err in flatten_errors(cfg, result):
            name = ".".join(sections + [key or ""]).strip(".")
            if err is False:
                raise ConfigError("%s: %s is required" % (path, name))
            raise ConfigError("%s: %s: %s" % (path, name, err))
    for sections, key in get_extra_values(cfg):
        name = ".".join(list(sections) + [key])
        raise ConfigError("%s: unknown setting %s" % (path, name))
    return Config(cfg.dict(), path)


def _read(path, seen):
    """The file as a dict, with its Include files merged under it (its own keys win)."""
    if path in seen:
        raise ConfigError("%s: Include loop" % path)
    seen.add(path)
    try:
        cfg = ConfigObj(path, file_error=True, list_values=True, interpolation=False)
    except (IOError, OSError) as e:
        raise ConfigError("%s: cannot read: %s" % (path, getattr(e, "strerror", None) or e))
    except ConfigObjError as e:
        raise ConfigError("%s: %s" % (path, e))
    own = cfg.dict()
    includes = own.pop("Include", [])
    if isinstance(includes, str):
        includes = [includes]
    merged = {}
    for inc in includes:
        inc_path = os.path.join(os.path.dirname(path), inc)
        _merge(merged, _read(inc_path, seen))
    _merge(merged, own)
    base = os.path.dirname(path)
    if isinstance(merged.get("Log"), str) and merged["Log"] and not os.path.isabs(merged["Log"]):
        merged["Log"] = os.path.join(base, merged["Log"])
    return merged


def _merge(into, other):
    for k, v in other.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = v
