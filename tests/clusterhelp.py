"""Small helpers shared by the multi-key / fan-out / scripting / pub-sub /
blocking / transaction tests: which master owns a key, the proxy's backend
connection counts (INFO servers), per-node command stats, polling."""


from conftest import RawClient, replies
from geproxy.resp import command
from geproxy.slots import key_slot
from conftest import wait_for  # noqa: F401 (re-exported for the tests)


def slot_owners(cluster):
    """slot -> master port, from CLUSTER SLOTS of a live master."""
    owners = [None] * 16384
    c = cluster.client(cluster.masters()[0])
    for first, last, master, *_ in c.execute_command("CLUSTER", "SLOTS"):
        owners[first:last + 1] = [int(master[1])] * (last - first + 1)
    return owners


def owner_of(cluster, key):
    if isinstance(key, str):
        key = key.encode()
    return slot_owners(cluster)[key_slot(key)]


def keys_per_master(cluster, prefix, n=1):
    """{master port: [n keys of distinct slots owned by it]}, keys named prefix:i."""
    owners = slot_owners(cluster)
    out = {p: [] for p in cluster.masters()}
    seen = set()
    i = 0
    while any(len(v) < n for v in out.values()):
        k = "%s:%d" % (prefix, i)
        i += 1
        s = key_slot(k.encode())
        if s in seen or len(out[owners[s]]) >= n:
            continue
        seen.add(s)
        out[owners[s]].append(k)
    return out


def proxy_info(port, section):
    c = RawClient(port)
    try:
        c.send(command("INFO", section))
        return c.recv_until(replies(1)).decode()
    finally:
        c.close()


def backend_connections(port):
    """Sum of `Connections` over the Server blocks of the proxy's INFO servers."""
    total = 0
    for line in proxy_info(port, "servers").splitlines():
        if line.startswith("Connections:"):
            total += int(line.split(":", 1)[1])
    return total


def calls(cluster, port, name):
    """How many times a node ran `name` (INFO commandstats)."""
    stats = cluster.client(port).info("commandstats")
    return stats.get("cmdstat_%s" % name, {}).get("calls", 0)


