"""A backend node as the proxy sees it: address, role, its links, its
counters (the `# Servers` section of INFO), and its failure state.

A node that fails ServerFailureLimit times in a row is marked failed for
ServerRetryTimeout: requests for its slots are answered with an error at once
instead of piling up behind a dead socket; after that it is tried again.
"""

import logging
import time

import gevent

from .nodelink import NodeLink

log = logging.getLogger("geproxy.server")
HOLD_MAX = 0.05     # seconds shared links may wait for a private connection to be readied


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
        self.links = {}
        self.idle_private = {}          # via (login.py) -> [PrivateConn]
        self.holds = 0                  # private connections being readied: shared links wait (LinkHold)
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
    Never longer than HOLD_MAX: a slow dial does not stall the node's traffic."""

    def __init__(self, server):
        self.server = server
        server.holds += 1
        self.timer = gevent.get_hub().loop.timer(HOLD_MAX)
        self.timer.start(self.release)

    def release(self):
        server, self.server = self.server, None
        if server is None:
            return
        self.timer.stop()
        server.holds -= 1
        if not server.holds:
            for link in server.links.values():
                link.kick()

