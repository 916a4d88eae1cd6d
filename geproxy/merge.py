"""Combining node replies into the one reply a client expects.

Replies stay raw bytes where they can (MGET's values, KEYS' names are passed
through element by element); only counts and cursors are decoded."""

import random

from .framer import elements
from .resp import OK, array, integer


def first_error(replies):
    for r in replies:
        if r[:1] == b"-":
            return r
    return None


def sum_integers(replies):
    return first_error(replies) or integer(sum(int(r[1:-2]) for r in replies))


def all_ok(replies):
    return first_error(replies) or OK


def same_reply(replies):
    """All nodes did the same thing (SCRIPT LOAD, FUNCTION LOAD): one answer."""
    return first_error(replies) or replies[0]


def any_ok(replies):
    """SCRIPT KILL and friends: fine if it worked anywhere; else the most telling
    error (UNKILLABLE over NOTBUSY)."""
    for r in replies:
        if r[:1] != b"-":
            return r
    return next((r for r in replies if not r.startswith(b"-NOTBUSY")), replies[0])


def running_script(replies):
    """FUNCTION STATS: the masters share their libraries; the script running,
    if any, is the one node's that runs it."""
    for r in replies:
        i = r.find(b"running_script\r\n")
        if i > 0 and r[i + 16:i + 17] != b"_" and r[i + 16:i + 19] not in (b"*-1", b"$-1"):
            return r
    return next((r for r in replies if r[:1] != b"-"), replies[0])


def concat(replies):
    return first_error(replies) or array([e for r in replies for e in elements(r)])


def union(replies):
    err = first_error(replies)
    if err:
        return err
    seen = {}
    for r in replies:
        for e in elements(r):
            seen.setdefault(e, None)
    return array(list(seen))


def scripts_exist(known):
    """SCRIPT EXISTS: a script exists when every master has it, or when the
    proxy knows its body (`known`, per sha), so a master without it is given
    it on NOSCRIPT."""
    def merge(replies):
        err = first_error(replies)
        if err:
            return err
        columns = zip(*(elements(r) for r in replies))
        return array([integer(1) if k or all(e == b":1\r\n" for e in col) else integer(0)
                      for k, col in zip(known, columns)])
    return merge


def count_pairs(replies):
    """PUBSUB NUMSUB: [channel, count, ...] in the asked order; counts summed over nodes."""
    err = first_error(replies)
    if err:
        return err
    rows = [elements(r) for r in replies]
    out = []
    for i in range(0, len(rows[0]), 2):
        out.append(rows[0][i])
        out.append(integer(sum(int(row[i + 1][1:-2]) for row in rows)))
    return array(out)


def random_key(replies):
    """RANDOMKEY: a key from a master drawn at random among those that have one."""
    keys = [r for r in replies if r[:1] == b"$" and r != b"$-1\r\n"]
    if keys:
        return random.choice(keys)
    return first_error(replies) or replies[0]


def readable(how, grant):
    """Merge with `how`, then keep only the key names `grant` may read (KEYS)."""
    def merge(replies):
        reply = how(replies)
        return _keep(reply, grant) if reply[:1] == b"*" else reply
    return merge


def _keep(reply, grant):
    return array([e for e in elements(reply) if grant.may_read(e[e.index(b"\r\n") + 2:-2])])


def placed(positions, total):
    """MGET: each part's elements go back to the client's key positions."""
    def merge(replies):
        err = first_error(replies)
        if err:
            return err
        out = [None] * total
        for where, r in zip(positions, replies):
            for i, e in zip(where, elements(r)):
                out[i] = e
        return array(out)
    return merge


def slowlog(count):
    """SLOWLOG GET [count]: the newest `count` entries of all masters (each
    node sent its newest `count`), newest first, as one Redis's log reads."""
    def merge(replies):
        err = first_error(replies)
        if err:
            return err
        entries = [e for r in replies for e in elements(r)]
        entries.sort(key=_entry_age)
        return array(entries if count < 0 else entries[:count])
    return merge


def _entry_age(entry):
    """Sort key, newest first: (-timestamp, -id) from `*6\r\n:id\r\n:timestamp\r\n...`."""
    parts = entry.split(b"\r\n", 3)
    return -int(parts[2][1:]), -int(parts[1][1:])

