"""Commands that concern the whole keyspace, sent to every master and merged
(DBSIZE, KEYS, FLUSHALL, SCRIPT LOAD, PUBSUB SHARDCHANNELS, ...), and SCAN
(scan.py), which walks the masters one after another behind a single cursor.

The table says, per command or command|subcommand, whether it goes to every
master or to any one, and how replies combine.

What PUBSUB counts: clients' subscriptions, each once.  CHANNELS, NUMSUB and
NUMPAT are the home master's, which holds every SUBSCRIBE and PSUBSCRIBE of
every geproxy client on the cluster (all pick the same home master) and not
the copies pubsub.py keeps on the other masters for keyspace notifications;
clients subscribed directly on the home master count too, those subscribed
directly on other nodes do not (as a cluster node counts only its own).
SHARDCHANNELS and SHARDNUMSUB combine the masters', each shard channel living
on its slot's master only; shard subscribers on replicas are not counted.
"""

from . import merge, private, scan
from .login import proto_of
from .request import Gather
from .clientcmd import close_users, user_of
from .resp import NOT_READY, bulk, command, decode, error, null

ALL, ONE, ASIDE = "all", "one", "aside"   # ASIDE: every master, each on a private connection
EVERY = "every"     # every node, replicas too, each on a private connection: ACL users live per node
HOME = "home"       # the pub/sub home master (serverpool.home), where every client's SUBSCRIBE is

# name -> (targets, merge function; None: made per call, in dispatch)
TABLE = {
    "dbsize": (ALL, merge.sum_integers),
    "keys": (ALL, merge.concat),
    "randomkey": (ALL, merge.random_key),
    "flushall": (ALL, merge.all_ok),
    "flushdb": (ALL, merge.all_ok),
    "script|load": (ALL, merge.same_reply),
    "script|exists": (ALL, None),
    "script|flush": (ALL, merge.all_ok),
    "script|kill": (ASIDE, merge.any_ok),
    "function|load": (ALL, merge.same_reply),
    "function|delete": (ALL, merge.same_reply),
    "function|flush": (ALL, merge.all_ok),
    "function|restore": (ALL, merge.same_reply),
    "function|kill": (ASIDE, merge.any_ok),
    "function|stats": (ASIDE, merge.running_script),
    # What clients subscribed, each once (see the module's docstring).
    "pubsub|channels": (HOME, None),
    "pubsub|numpat": (HOME, None),
    "pubsub|numsub": (HOME, None),
    "pubsub|shardchannels": (ALL, merge.union),
    "pubsub|shardnumsub": (ALL, merge.count_pairs),
    "slowlog|get": (ALL, None),
    "slowlog|reset": (ALL, merge.all_ok),
    "acl|setuser": (EVERY, merge.all_ok),
    "acl|deluser": (EVERY, merge.same_reply),
    "acl|load": (EVERY, merge.all_ok),
    "acl|save": (EVERY, merge.all_ok),
}
OWN_USER = error("ERR geproxy: that would change the user geproxy logs in to its nodes as")


def dispatch(sender, session, name, args, raw):
    """Route a fan-out command (`name` as "dbsize" or "script|load"); returns
    reply bytes or a Gather."""
    masters = sorted(sender.pool.masters, key=lambda s: s.addr)
    if not masters:
        return NOT_READY
    grant = session.grant
    limited = grant is not None and grant.prefixed   # listings show only what the class may read
    if name == "scan":
        return scan.scan(sender, session, masters, args, grant if limited else None)
    if name == "randomkey" and limited:
        return random_readable(masters, grant, session.via)
    targets, how = TABLE.get(name, (ONE, None))
    if name == "keys" and limited:
        how = merge.readable(how, grant)
    if name == "script|exists":
        how = merge.scripts_exist([sender.scripts.get(sha) is not None for sha in args[2:]])
    elif name == "script|load":
        sender.scripts.remember(args[2])
    elif name == "script|flush":
        sender.scripts.bodies.clear()
    if name == "acl|whoami":
        return bulk(user_of(session))
    if name in ("acl|setuser", "acl|deluser"):
        users = args[2:3] if name == "acl|setuser" else args[2:]
        if (sender.pool.cfg.User or "default").encode() in users:
            return OWN_USER
    if name == "slowlog|get":
        count = int(args[2]) if len(args) > 2 and args[2].lstrip(b"-").isdigit() else 10
        how = merge.slowlog(count)
    elif name == "slowlog|len":
        return slowlog_len(sender.pool, masters, session.via)
    if targets == EVERY:
        nodes = [s for s in sender.pool.servers.values() if not s.cluster_fail]
        reply = how(private.call_each(nodes, raw, session.via))
        if name == "acl|deluser" and reply[:1] == b":":
            close_users(session, args[2:])
        return reply
    if targets == ONE:
        return sender.send_any(session, raw)
    if targets == HOME:
        home = sender.pool.home()
        return NOT_READY if home is None else sender.send_to(session, raw, home, None)
    if targets == ASIDE:
        return how(private.call_each(masters, raw, session.via))
    g = Gather(session, how)
    for server in masters:
        sender.submit(server, g.part(raw, None))
    return g.close()


def slowlog_len(pool, masters, via):
    """SLOWLOG LEN: the masters' entries, at most slowlog-max-len, as one log holds."""
    lens = private.call_each(masters, command("SLOWLOG", "LEN"), via)
    err = merge.first_error(lens)
    if err:
        return err
    limit = decode(private.call_each([pool.home()], command("CONFIG", "GET", "slowlog-max-len"), via)[0])
    total = sum(int(r[1:-2]) for r in lens)
    if isinstance(limit, (list, dict)) and limit:
        total = min(total, int(list(limit.values())[0] if isinstance(limit, dict) else limit[1]))
    return b":%d\r\n" % total


def random_readable(masters, grant, via, tries=5):
    """RANDOMKEY for a class with key prefixes: a few draws, then nil."""
    for _ in range(tries):
        for reply in private.call_each(masters, b"*1\r\n$9\r\nRANDOMKEY\r\n", via):
            if reply[:1] == b"$" and reply != b"$-1\r\n" and grant.may_read(reply[reply.index(b"\r\n") + 2:-2]):
                return reply
    return null(proto_of(via))


