"""Multi-key commands whose keys span slots (MGET, MSET, DEL, UNLINK, EXISTS,
TOUCH): split into one command per slot, sent in parallel over the node links,
and merged back in the client's key order.  Keys of one slot stay one command.

Atomicity is per slot, as it would be for a cluster client doing the same.
"""

from . import merge
from .request import Gather
from .resp import command
from .slots import key_slot

# name -> (arguments per key, merge)
SPLIT = {
    "mget": (1, None),
    "mset": (2, merge.all_ok),
    "del": (1, merge.sum_integers),
    "unlink": (1, merge.sum_integers),
    "exists": (1, merge.sum_integers),
    "touch": (1, merge.sum_integers),
}


def dispatch(router, session, cmd, args):
    """Split a command whose keys span slots."""
    step, how = SPLIT[cmd.name]
    groups = {}                 # slot -> [positions of the keys]
    for pos in range(1, len(args), step):
        groups.setdefault(key_slot(args[pos]), []).append(pos)
    if how is None:  # MGET: values go back to each key's place
        how = merge.placed([[(p - 1) // step for p in ps] for ps in groups.values()], (len(args) - 1) // step)
    g = Gather(session, how)
    verb = args[0]
    for slot, positions in groups.items():
        part = [verb]
        for p in positions:
            part.extend(args[p:p + step])
        router.submit_slot(slot, g.part(command(*part), slot), cmd.readonly)
    return g.close()
