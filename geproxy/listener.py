"""The listening sockets: Bind (plain) and TLSBind (TLS), each host:port,
[v6]:port or a unix socket path.

Plain sockets, so the arbiter (which never starts gevent) can make them too;
the proxy hands them to gevent.  TLS is done per client, after accept."""

import os
import socket
from typing import Dict, Optional

from .settings import parse_address

KEYS = ("Bind", "TLSBind")     # the settings naming a listening address


class ListenError(Exception):
    """A listener could not be made; str() names the setting and the address."""


def bind(bind_addr: str, reuseport: bool = False, backlog: int = 1024) -> socket.socket:
    host, port = parse_address(bind_addr)
    if port is None:
        if os.path.exists(host):
            os.unlink(host)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(host)
    else:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuseport:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    sock.listen(backlog)
    return sock


def addresses(cfg) -> Dict[str, str]:
    """Setting name -> address, for the listeners the settings ask for."""
    return {key: getattr(cfg, key) for key in KEYS if getattr(cfg, key)}


def bind_all(cfg, reuseport: bool = False, have: Optional[dict] = None) -> Dict[str, socket.socket]:
    """Every listener the settings ask for, by setting name (those in `have`
    are taken as they are).  All or none: on a failure the ones made here are
    closed and ListenError names the setting."""
    made, out = [], dict(have or {})
    try:
        for key, addr in addresses(cfg).items():
            if key not in out:
                try:
                    out[key] = bind(addr, reuseport)
                except OSError as e:
                    raise ListenError("cannot listen on %s %s: %s" % (key, addr, e.strerror or e)) from None
                made.append(out[key])
    except ListenError:
        for sock in made:
            sock.close()
        raise
    return out


def is_unix(bind_addr: str) -> bool:
    return parse_address(bind_addr)[1] is None
