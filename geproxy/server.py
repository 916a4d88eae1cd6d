"""A backend node as the proxy sees it: address, role, its links, its
counters (the `# Servers` section of INFO), and its failure state.

A node that fails ServerFailureLimit times in a row is marked failed for
ServerRetryTimeout: requests for its slots are answered with an error at once
instead of piling up behind a dead socket; after that it is tried again.
"""

import logging
import time
from collections import deque

import gevent
from gevent.event import Event

from .nodelink import NodeLink

log = logging.getLogger("geproxy.server")
HOLD_MAX = 0.5      # seconds shared links may wait for a private connection to be readied


class Server:
    def __init__(self, addr, cfg, latency):
        self.addr = addr
        self.latency = latency          # the proxy's LatencyMonitors
        host, _, port = addr.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.cfg = cfg                  # the ClusterServerPool section
        self.role = "master"
        self.node_id = ""
        self.group = ""                 # the master's node id
        self.dc = ""
        self.cluster_fail = False       # the cluster itself flags the node as failed
        self.cluster = True             # a cluster node (replicas need READONLY); False in a pool of groups
        self.links = {}
        self.idle_private = {}          # via (login.py) -> [PrivateConn]
        self.holds = deque()            # LinkHolds: private connections being readied; shared links wait
        self.failures = 0               # in a row
        self.fail_until = 0.0
        self.connections = self.connect = 0
        self.requests = self.responses = self.send_bytes = self.recv_bytes = 0

    def link(self, via):
        """The shared link for `via`: a RESP version, or a user's Login (login.py)."""
        link = self.links.get(via)
        if link is None:
            link = self.links[via] = NodeLink(self, via)
        return link

    def current_is_fail(self):
        """INFO's CurrentIsFail: marked failed by us, or flagged failed by the cluster."""
        return self.cluster_fail or self.is_failed()

    def is_failed(self):
        if self.fail_until and time.monotonic() >= self.fail_until:
            self.fail_until = 0.0  # retry time: let requests through again
        return bool(self.fail_until)

    def note_failure(self):
        self.failures += 1
        if self.failures >= self.cfg.ServerFailureLimit:
            self.failures = 0
            self.fail_until = time.monotonic() + self.cfg.ServerRetryTimeout
            log.warning("server %s marked failed for %gs", self.addr, self.cfg.ServerRetryTimeout)

    def close(self):
        for link in self.links.values():
            link.close()
        self.links = {}
        for conns in self.idle_private.values():
            for conn in conns:
                conn.close()
        self.idle_private = {}

    def __repr__(self):
        return "<Server %s %s>" % (self.addr, self.role)


class LinkHold:
    """While a blocking command's private connection to this node is being
    readied (maybe dialled), the shared links wait, so a command another client
    sent after it (BLPOP, then someone's LPUSH) does not reach the node first.
    Blocking commands to one node are sent in the order they came: by loop
    turn, then, within one turn (the event loop wakes the clients of one turn
    last first), by client id, which follows connection order.  Never longer
    than HOLD_MAX: a slow dial does not stall the node's traffic for good."""

    def __init__(self, server, client_id):
        self.server = server
        self.turn = Event()
        loop = gevent.get_hub().loop
        self.rank = (loop.now(), client_id)
        holds = server.holds
        i = len(holds)
        while i and holds[i - 1].rank > self.rank:
            i -= 1
        holds.insert(i, self)
        self.timer = loop.timer(HOLD_MAX)
        self.timer.start(self.release)

    def wait_turn(self):
        """Let the other clients of this loop turn queue theirs, then wait until
        the blocking commands before this one are sent."""
        gevent.sleep(0)
        deadline = time.monotonic() + HOLD_MAX
        holds = self.server.holds if self.server is not None else ()
        while holds and holds[0] is not self and time.monotonic() < deadline:
            self.turn.clear()
            self.turn.wait(deadline - time.monotonic())

    def release(self):
        server, self.server = self.server, None
        if server is None:
            return
        self.timer.stop()
        holds = server.holds
        holds.remove(self)
        if holds:
            holds[0].turn.set()
        else:
            for link in server.links.values():
                link.kick()
