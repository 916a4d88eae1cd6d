"""Helpers for clusters whose addresses change (test_cloud_addresses.py): a
stand-in for a cloud service address (a TCP forwarder whose target can be
switched), a cluster whose nodes announce a host name, a node that is not in
a cluster, a client that records every reply while the cluster changes, and
readings of the proxy's INFO and file descriptors."""

import os
import socket
import tempfile
import threading
import time

from conftest import HOST, RawClient, replies
from clusterhelp import proxy_info
from geproxy.devcluster import DevCluster, command as node_command, free_ports
from geproxy.resp import command


class Forwarder(threading.Thread):
    """HOST:port -> HOST:target, like a cloud load balancer or Kubernetes
    Service in front of the pods: `target` may change; a connection that
    cannot reach it is closed, as a service with no ready pod does."""

    def __init__(self, target, port=0):
        super().__init__(daemon=True)
        self.target = target
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((HOST, port))
        self.lsock.listen(64)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.done = threading.Event()
        self.socks = []
        self.start()

    @property
    def addr(self):
        return "%s:%d" % (HOST, self.port)

    def run(self):
        while not self.done.is_set():
            try:
                a, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                b = socket.create_connection((HOST, self.target), timeout=2)
                b.settimeout(None)
            except OSError:
                a.close()
                continue
            self.socks += [a, b]
            for x, y in ((a, b), (b, a)):
                threading.Thread(target=self._pump, args=(x, y), daemon=True).start()

    @staticmethod
    def _pump(x, y):
        try:
            while True:
                data = x.recv(65536)
                if not data:
                    break
                y.sendall(data)
        except OSError:
            pass
        finally:
            for s in (x, y):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.done.set()
        self.lsock.close()
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass


class BlackHole:
    """Listening sockets on `ports` whose backlog is full: a connection there
    neither succeeds nor is refused, it times out, as with a pod's address
    after the pod is gone (nothing answers, not even a reset)."""

    def __init__(self, ports):
        self.socks = []
        for port in ports:
            lsock = socket.socket()
            lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            lsock.bind((HOST, port))
            lsock.listen(0)
            filler = socket.create_connection((HOST, port), timeout=2)     # the one place in the backlog
            self.socks += [lsock, filler]

    def close(self):
        for s in self.socks:
            s.close()


def named_cluster(name="localhost"):
    """A 3+3 cluster whose nodes announce `name` and ask clients to use it
    (MOVED, ASK and CLUSTER SLOTS say name:port); ready when every node says so."""
    dc = DevCluster().start()
    try:
        for p in dc.ports:
            node_command(dc.host, p, "CONFIG", "SET", "cluster-announce-hostname", name)
            node_command(dc.host, p, "CONFIG", "SET", "cluster-preferred-endpoint-type", "hostname")

        def named_everywhere():
            for p in dc.ports:
                for entry in node_command(dc.host, p, "CLUSTER", "SLOTS"):
                    if any(node[0] != name for node in entry[2:]):
                        return False
            return True
        deadline = time.time() + 20
        while not named_everywhere():
            assert time.time() < deadline, "nodes did not learn each other's names"
            time.sleep(0.1)
    except BaseException:
        dc.stop()
        raise
    return dc


def lone_node():
    """One cluster-enabled redis-server that is in no cluster yet (a new pod
    before it is joined): it answers CLUSTER NODES with itself and no slot.
    Stop it with .stop()."""
    dc = DevCluster(ports=free_ports(1), base_dir=tempfile.mkdtemp(prefix="geproxy-lone-"))
    dc._own_dir = True          # stop() removes the directory
    dc._launch(dc.ports[0])
    dc._wait_ping(dc.ports, time.time() + 20)
    return dc


class Recorder(threading.Thread):
    """One client sending SET after SET (keys over all slots) and recording
    (when sent, seconds to the reply, the reply's first bytes) for each."""

    def __init__(self, port, prefix):
        super().__init__(daemon=True)
        self.port, self.prefix = port, prefix
        self.log = []
        self.stop = threading.Event()
        self.start()

    def run(self):
        c = RawClient(self.port, timeout=30)
        i = 0
        try:
            while not self.stop.is_set():
                t = time.time()
                c.send(command("SET", "%s:%d" % (self.prefix, i % 200), i))
                reply = c.recv_until(replies(1), timeout=30)
                self.log.append((t, time.time() - t, reply[:120]))
                i += 1
                time.sleep(0.01)
        except Exception as e:  # the test sees it: a reply that never came
            self.log.append((time.time(), None, repr(e).encode()))
        finally:
            c.close()

    def finish(self):
        self.stop.set()
        self.join(40)
        return self.log


def servers(port):
    """The proxy's INFO servers: [{field: value}] per node."""
    text = proxy_info(port, "servers").split("\r\n", 1)[1]
    out = []
    for block in text.split("\r\n\r\n"):
        fields = dict(line.split(":", 1) for line in block.splitlines() if ":" in line and
                      not line.startswith("Server:"))
        for line in block.splitlines():
            if line.startswith("Server:"):
                fields["Server"] = line[len("Server:"):]
        if "Server" in fields:
            out.append(fields)
    return out


def resource(port, field):
    for line in proxy_info(port, "SystemResource").splitlines():
        if line.startswith(field + ":"):
            return int(line.split(":", 1)[1])
    raise AssertionError("no %s in INFO SystemResource" % field)


def open_fds(pid):
    """Sockets the process has open."""
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:"):
                n += 1
        except OSError:
            pass
    return n
