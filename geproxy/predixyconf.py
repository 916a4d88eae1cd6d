"""Reading predixy's own brace-format configuration files, so users can point
geproxy at the predixy.conf they already have.

The file (with its Include files spliced in where they appear, as predixy does)
is parsed into a tree of (key, value, children) nodes, which is then mapped onto
the nested dict our configobj loader validates.  Anything wrong raises
PredixyConfError with one line: "file:line: problem".
"""

import os
import re

from .settings import secret

TOP = ("Name", "Bind", "WorkerThreads", "MaxMemory", "ClientTimeout", "BufSize", "Log", "LogRotate",
       "AllowMissLog", "LogVerbSample", "LogDebugSample", "LogInfoSample", "LogNoticeSample",
       "LogWarnSample", "LogErrorSample")
POOL = ("Password", "User", "MasterReadPriority", "StaticSlaveReadPriority", "DynamicSlaveReadPriority",
        "RefreshInterval", "ServerTimeout", "ServerFailureLimit", "ServerRetryTimeout", "KeepAlive")
GROUP_POOL = POOL + ("Databases", "Hash", "HashTag", "Distribution", "RefreshMethod")
GROUP_POOLS = ("SentinelServerPool", "StandaloneServerPool")
UNSUPPORTED = ("DataCenter", "LocalDC", "CustomCommand")

_OURS = re.compile(r"^\s*(\[|[^\s=#]+\s*=)")   # configobj: `[Section]` or `Key = value`


class PredixyConfError(ValueError):
    """A bad predixy-format file; str() is the one line to show the operator."""


class _Node:
    __slots__ = ("key", "val", "sub", "file", "line")

    def __init__(self, key, val, sub, file, line):
        self.key, self.val, self.sub, self.file, self.line = key, val, sub, file, line

    def fail(self, msg):
        raise PredixyConfError("%s:%d: %s" % (self.file, self.line, msg))

    def named(self, *names):
        return self.key.lower() in [n.lower() for n in names]


def looks_like_predixy(text):
    """Decide by the first meaningful line: `Key = v` / `[Section]` is ours, `Key v` / braces predixy's."""
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if _OURS.match(s):
            return False
        if s == "}" or s.endswith("{") or re.match(r"^[^\s=]+\s+\S", s):
            return True
    return False


def load_predixy(path):
    """The file as the dict our loader validates (see module docstring)."""
    stack = [_Node("", "", [], path, 0)]
    for f, n, kind, key, val in _lines(os.path.abspath(path), []):
        if kind == "}":
            if len(stack) == 1:
                raise PredixyConfError("%s:%d: '}' without a matching '{'" % (f, n))
            stack.pop()
            continue
        node = _Node(key, val, [] if kind == "{" else None, f, n)
        stack[-1].sub.append(node)
        if kind == "{":
            stack.append(node)
    if len(stack) > 1:
        stack[-1].fail("%s { is never closed with '}'" % stack[-1].key)
    return _top(stack[0].sub)


def _lines(path, chain, where=""):
    """(file, line number, kind, key, value) for each statement, Include files spliced in."""
    if path in chain:
        raise PredixyConfError("%sInclude loop: %s" % (where, " -> ".join(chain + [path])))
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as e:
        raise PredixyConfError("%scannot read %s: %s" % (where, path, getattr(e, "strerror", None) or e))
    for n, line in enumerate(text.splitlines(), 1):
        st = _parse(line, path, n)
        if st is None:
            continue
        kind, key, val = st
        if kind == "kv" and key.lower() == "include":
            if not val:
                raise PredixyConfError("%s:%d: Include needs a file name" % (path, n))
            inc = os.path.abspath(os.path.join(os.path.dirname(path), val))
            yield from _lines(inc, chain + [path], "%s:%d: " % (path, n))
        else:
            yield path, n, kind, key, val


def _parse(line, path, n):
    """One line -> None (blank/comment), ("}", "", ""), ("{", key, arg) or ("kv", key, value)."""
    s = line.strip()
    if not s or s.startswith("#"):
        return None
    m = re.match(r"([^\s#{]+)\s*(.*)$", s)
    if not m:
        raise PredixyConfError("%s:%d: expected 'Key value', 'Key {' or '}'" % (path, n))
    key, rest = m.groups()
    if key == "}":
        if rest and not rest.startswith("#"):
            raise PredixyConfError("%s:%d: unexpected %r after '}'" % (path, n, rest))
        return "}", "", ""
    if rest.startswith('"'):
        val, i, esc = "", 1, False
        while i < len(rest) and (esc or rest[i] != '"'):
            esc = not esc and rest[i] == "\\"
            val += "" if esc else rest[i]
            i += 1
        if i == len(rest):
            raise PredixyConfError("%s:%d: unterminated quoted string" % (path, n))
        tail = rest[i + 1:].split("#", 1)[0].strip()
        if tail not in ("", "{"):
            shown = "text" if secret(key) else repr(tail)     # never a password's
            raise PredixyConfError("%s:%d: unexpected %s after quoted value" % (path, n, shown))
        return ("{" if tail else "kv"), key, val
    val = rest.split("#", 1)[0].strip()
    if val.endswith("{"):
        return "{", key, val[:-1].strip()
    return "kv", key, val


def _canon(key, names):
    """predixy's keys are case-insensitive; give known ones our spelling."""
    return next((c for c in names if c.lower() == key.lower()), key)


def _top(nodes):
    out = {}
    for nd in nodes:
        if nd.named(*UNSUPPORTED):
            nd.fail("%s: geproxy does not support it in predixy's format yet" % _canon(nd.key, UNSUPPORTED))
        elif nd.named("ClusterServerPool"):
            out["ClusterServerPool"] = _pool(_block(nd))   # predixy: the last one wins
        elif nd.named(*GROUP_POOLS):
            out[_canon(nd.key, GROUP_POOLS)] = _group_pool(_block(nd))
        elif nd.named("Authority"):
            out["Authority"] = _authority(_block(nd))
        elif nd.named("LatencyMonitor"):
            mon = out.setdefault("LatencyMonitor", {})
            if not nd.val:
                nd.fail("LatencyMonitor needs a name: LatencyMonitor NAME {")
            if nd.val in mon:
                nd.fail("LatencyMonitor %r defined twice" % nd.val)
            mon[nd.val] = _latency(_block(nd))
        elif nd.key in ("+", "-"):
            nd.fail("%r item outside a list block" % (nd.key + " " + nd.val))
        else:
            out[_canon(nd.key, TOP)] = _scalar(nd) if nd.named(*TOP) else _plain(nd)
    return out


def _block(nd):
    return nd if nd.sub is not None else nd.fail("%s needs a block: %s {...}" % (nd.key, nd.key))


def _scalar(nd):
    return nd.val if nd.sub is None else nd.fail("%s takes a value, not a block" % nd.key)


def _items(nd, minus=False):
    """`+ x` lines as "x"; `- x` as "-x" where removal makes sense."""
    out = []
    for it in _block(nd).sub:
        if it.sub is None and (it.key == "+" or (minus and it.key == "-")):
            out.append(it.val if it.key == "+" else "-" + it.val)
        else:
            it.fail("only %s items are allowed in %s" % ("'+ x' / '- x'" if minus else "'+ x'", nd.key))
    return out


def _plain(nd):
    """Unknown keys pass through (our validator names them): value, list or dict."""
    if nd.sub is None:
        return nd.val
    if nd.sub and all(i.key in ("+", "-") and i.sub is None for i in nd.sub):
        return _items(nd, minus=True)
    return {i.key: _plain(i) for i in nd.sub}


def _pool(nd):
    out = {}
    for c in nd.sub:
        if c.named("Servers"):
            out.setdefault("Servers", []).extend(_items(c))
        elif c.named("Databases"):
            if _scalar(c) != "1":
                c.fail("ClusterServerPool Databases must be 1")
        elif c.named(*POOL):
            out[_canon(c.key, POOL)] = _scalar(c)
        else:
            out[c.key] = _plain(c)
    return out


def _group_pool(nd):
    """Sentinel/Standalone pools: `Sentinels [password] { + addr }` and one
    `Group name { + addr ... }` per group, the group becoming a [[name]] subsection."""
    out = {}
    for c in nd.sub:
        if c.named("Sentinels"):
            out.setdefault("Sentinels", []).extend(_items(c))
            if c.val:
                out["SentinelPassword"] = c.val
        elif c.named("Group"):
            if not c.val:
                c.fail("Group needs a name: Group NAME {")
            if c.val in out:
                c.fail("Group %r defined twice" % c.val)
            out[c.val] = {"Servers": _items(c)}
        elif c.named(*GROUP_POOL):
            out[_canon(c.key, GROUP_POOL)] = _scalar(c)
        elif c.named("Servers"):
            c.fail("%s lists its nodes in Group blocks, not Servers" % nd.key)
        else:
            out[c.key] = _plain(c)
    return out


def _authority(nd):
    out, names = {}, {}
    for a in nd.sub:
        if not a.named("Auth"):
            a.fail("Authority allows only Auth blocks, not %s" % a.key)
        _block(a)
        if a.val not in names:   # predixy: a repeated password replaces the earlier Auth
            names[a.val] = "auth%d" % (len([p for p in names if p]) + 1) if a.val else "default"
        sec = {"Password": a.val} if a.val else {}
        for c in a.sub:
            prefixes = ("KeyPrefix", "ReadKeyPrefix", "WriteKeyPrefix")
            if c.named(*prefixes):   # space-separated words; repeated lines add up, as in predixy
                sec.setdefault(_canon(c.key, prefixes), []).extend(_scalar(c).split())
            elif c.named("Mode"):
                sec["Mode"] = _scalar(c)
            else:
                sec[c.key] = _plain(c)
        out[names[a.val]] = sec
    return out


def _latency(nd):
    out = {}
    for c in nd.sub:
        if c.named("Commands", "TimeSpan"):
            name = _canon(c.key, ("Commands", "TimeSpan"))
            out.setdefault(name, []).extend(_items(c, minus=name == "Commands"))
        else:
            out[c.key] = _plain(c)
    return out
