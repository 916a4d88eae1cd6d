"""The listening socket for Bind: host:port, [v6]:port or a unix socket path.

A plain socket, so the arbiter (which never starts gevent) can make one too;
the proxy hands it to gevent."""

import os
import socket

from .settings import parse_address


def bind(bind_addr, reuseport=False, backlog=1024):
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


def is_unix(bind_addr):
    return parse_address(bind_addr)[1] is None
