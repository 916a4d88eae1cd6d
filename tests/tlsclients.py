"""Helpers for the tests of TLS to clients (TLSBind): certificates made at
test time (tlshelp.py), a proxy with a TLS listener beside its plain one, and
TLS connections with or without a client certificate."""

import os
import shutil
import socket
import ssl
import time

from conftest import HOST, free_port, start_proxy
from tlshelp import make_ca, make_cert


class Certs:
    """A CA; the proxy's certificate; a client certificate from the CA and one
    from another CA (refused)."""

    def __init__(self, directory):
        self.dir = directory
        self.ca = make_ca(directory)
        self.server = make_cert(directory, "server", self.ca)
        self.client = make_cert(directory, "client", self.ca, sans=[])
        self.rogue = make_cert(directory, "rogue", make_ca(directory, "other-ca"), sans=[])


def tls_top(certs, port, auth="optional", **more):
    """Top-level settings of a TLS listener on `port`."""
    top = {"TLSBind": "%s:%d" % (HOST, port), "TLSCertFile": certs.server.cert, "TLSKeyFile": certs.server.key,
           "TLSAuthClients": auth, "TLSCAFile": certs.ca.cert if auth != "off" else None}
    top.update(more)
    return top


def start_tls_proxy(cluster, certs, auth="optional", top=None, **kw):
    """A proxy with Bind (plain, for readiness) and TLSBind; .tls_port is the latter."""
    tls_port = free_port()
    p = start_proxy(cluster, top=dict(tls_top(certs, tls_port, auth), **(top or {})), **kw)
    p.tls_port = tls_port
    return p


def context(certs, client=None, **versions):
    """A client context trusting the test CA, with `client` (a tlshelp.Cert) to present."""
    ctx = ssl.create_default_context(cafile=certs.ca.cert)
    if client is not None:
        ctx.load_cert_chain(client.cert, client.key)
    for k, v in versions.items():
        setattr(ctx, k, v)
    return ctx


def connect(port, certs, client=None, timeout=10.0, **versions):
    """A TLS socket to the proxy, handshake done (server name: localhost)."""
    raw = socket.create_connection((HOST, port), timeout=timeout)
    try:
        return context(certs, client, **versions).wrap_socket(raw, server_hostname="localhost")
    except BaseException:
        raw.close()
        raise


def roundtrip(sock, data, until=b"\r\n", timeout=10.0):
    """Send `data`, read until the reply ends with `until`."""
    sock.settimeout(timeout)
    sock.sendall(data)
    buf = b""
    while not buf.endswith(until):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed; got %r" % buf[:200])
        buf += chunk
    return buf


def refused(port, certs, client=None, **versions):
    """True when the proxy ends the TLS connection: at the handshake, or (TLS
    1.3: the client's side is done before the server checks its certificate)
    at the first command."""
    try:
        s = connect(port, certs, client, **versions)
    except (ssl.SSLError, OSError):
        return True
    try:
        return roundtrip(s, b"PING\r\n") != b"+PONG\r\n"
    except (ssl.SSLError, OSError):
        return True
    finally:
        s.close()


def tls_ping(port, certs, timeout=1.0):
    try:
        s = connect(port, certs, timeout=timeout)
        try:
            return roundtrip(s, b"PING\r\n", timeout=timeout) == b"+PONG\r\n"
        finally:
            s.close()
    except (OSError, ssl.SSLError):
        return False


def peer_cn(port, certs):
    """The CN of the certificate the proxy presents to a new client."""
    s = connect(port, certs)
    try:
        subject = dict(x[0] for x in s.getpeercert()["subject"])
        return subject["commonName"]
    finally:
        s.close()


def swap_cert(certs, name, into):
    """A new certificate `name` from the CA, copied over the files of `into` (a Cert)."""
    fresh = make_cert(certs.dir, name, certs.ca)
    for src, dst in ((fresh.cert, into.cert), (fresh.key, into.key)):
        shutil.copyfile(src, dst + ".new")
        os.replace(dst + ".new", dst)
    return fresh


def wait_log(proxy, text, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if text in proxy.log():
            return True
        time.sleep(0.05)
    return False
