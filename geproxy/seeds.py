"""The seeds: the addresses in a cluster pool's `Servers`, where the proxy
goes to learn the cluster when it knows no node that answers.

In the cloud a seed is a name (a Kubernetes Service, a DNS record listing the
pods), and what it names changes when pods are replaced.  So a name is looked
up every time the seeds are needed, never cached, and each address it has is
tried in turn: one pod that is gone, or not in the cluster yet, does not hide
the others behind the same name.
"""

import ipaddress
import logging
import random
import socket
from typing import Callable, Iterator, List, Optional, Tuple

import gevent
from gevent import socket as gsocket

from .settings import parse_address

log = logging.getLogger("geproxy.pool")

Resolver = Callable[[str, int], List[str]]


def resolve(host: str, port: int) -> List[str]:
    """The addresses `host` has now (gevent's resolver: the event loop goes on
    meanwhile); raises OSError when it has none."""
    infos = gsocket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    seen = []
    for info in infos:
        ip = info[4][0]
        if ip not in seen:
            seen.append(ip)
    return seen


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class Seeds:
    """host:port seeds, each name looked up again at every use."""

    def __init__(self, specs: List[str], timeout: float = 2.0, resolver: Optional[Resolver] = None):
        self.specs = [parse_address(s) for s in specs]     # [(host, port)]: [v6] brackets gone
        self.timeout = timeout          # a DNS server that does not answer must not stall a refresh for long
        self.resolver = resolver or resolve
        self.errors: List[str] = []     # names that had no address at the last walk

    def spellings(self) -> set:
        """The seeds as "host:port", as CLUSTER NODES and MOVED spell nodes."""
        return {"%s:%d" % hp for hp in self.specs}

    def endpoints(self) -> Iterator[Tuple[str, int]]:
        """(ip, port) for every address of every seed, in the order given,
        a name's addresses shuffled (several proxies spread over the pods);
        a name is looked up only when the walk reaches it."""
        self.errors = []
        for host, port in self.specs:
            if is_ip(host):
                yield host, port
                continue
            ips = self._lookup(host, port)
            random.shuffle(ips)
            for ip in ips:
                yield ip, port

    def _lookup(self, host, port):
        try:
            with gevent.Timeout(self.timeout, socket.timeout("no answer within %gs" % self.timeout)):
                return list(self.resolver(host, port))
        except (OSError, UnicodeError) as e:     # socket.gaierror, socket.timeout; a name IDNA refuses
            why = "cannot resolve seed %s: %s" % (host, getattr(e, "strerror", None) or e)
            self.errors.append(why)
            log.debug(why)
            return []
