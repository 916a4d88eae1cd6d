"""Multi-key commands whose keys span slots (MGET, MSET, DEL, UNLINK, EXISTS,
TOUCH): split into one command per slot, sent in parallel over the node links,
and merged back in the client's key order.  Keys of one slot stay one command.

Atomicity is per slot, as it would be for a cluster client doing the same.

The usual case, random keys, has one key per slot.  Then each part is a
one-key command built from a ready header, the parts are made in key order,
and MGET's reply is the parts' reply bytes joined behind one array header:
no reply is split into elements.  (An MGET part is a GET, whose reply for a
key of another type is WRONGTYPE where MGET's is nil: that error becomes nil.)
"""

from . import merge
from .request import Gather
from .resp import command, null

# name -> how the parts' replies merge (MGET: see values and merge.placed); arguments per key
# are the command table's (Command.split)
MERGE = {
    "mget": None,
    "mset": merge.all_ok,
    "del": merge.sum_integers,
    "unlink": merge.sum_integers,
    "exists": merge.sum_integers,
    "touch": merge.sum_integers,
}
# the one-key command each part becomes when a slot has one key
ONE = {"mget": b"*2\r\n$3\r\nGET\r\n", "mset": b"*3\r\n$3\r\nSET\r\n", "del": b"*2\r\n$3\r\nDEL\r\n",
       "unlink": b"*2\r\n$6\r\nUNLINK\r\n", "exists": b"*2\r\n$6\r\nEXISTS\r\n", "touch": b"*2\r\n$5\r\nTOUCH\r\n"}


def dispatch(sender, session, cmd, args, slots):
    """Split a command whose keys span slots; `slots` are its keys' slots, in order."""
    step, how = cmd.split, MERGE[cmd.name]
    submit, readonly = sender.submit_slot, cmd.readonly
    if len(set(slots)) == len(slots):
        head = ONE[cmd.name]
        g = Gather(session, how or values(session.proto))
        part = g.part
        if step == 1:
            for slot, key in zip(slots, args[1:]):
                submit(slot, part(head + b"$%d\r\n%s\r\n" % (len(key), key), slot), readonly)
        else:
            for slot, key, value in zip(slots, args[1::2], args[2::2]):
                raw = head + b"$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(value), value)
                submit(slot, part(raw, slot), readonly)
        return g.close()
    groups = {}                 # slot -> [index of the key]
    for i, slot in enumerate(slots):
        groups.setdefault(slot, []).append(i)
    if how is None:  # MGET: values go back to each key's place
        how = merge.placed(list(groups.values()), len(slots))
    g = Gather(session, how)
    verb = args[0]
    for slot, where in groups.items():
        part = [verb]
        for i in where:
            part.extend(args[1 + i * step:1 + (i + 1) * step])
        submit(slot, g.part(command(*part), slot), readonly)
    return g.close()


def values(proto):
    """MGET from one GET per key: the replies, in key order, as one array."""
    nil = null(proto)

    def merge_values(replies):
        for i, r in enumerate(replies):
            if r[0] == 45:  # '-'
                if not r.startswith(b"-WRONGTYPE"):
                    return r
                replies[i] = nil
        return b"*%d\r\n" % len(replies) + b"".join(replies)
    return merge_values
