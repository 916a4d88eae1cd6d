"""TLS contexts, made from the settings.

To nodes (the pool's ServerTLS* settings): one client context per pool, made
on first use and kept on the pool's settings, used by connection.dial for
every backend socket (node links, private connections, the control
connection, Sentinels).

Names: nodes are found by address (CLUSTER NODES, Sentinel), nearly always an
IP, and a fleet's certificates seldom list every node's IP.  So with
ServerTLSName empty the chain is verified (the node holds a certificate our CA
signed) and the name is not, and no SNI is sent: what `redis-cli --tls`
without `--sni` does, and what Redis itself does on the cluster bus.  With
ServerTLSName set, every node's certificate must carry that name (a shared
service name, or a wildcard), and it is sent as SNI.  ServerTLSVerify off
skips both checks: for tests only, it gives encryption without knowing whom
the proxy talks to.
"""

import ssl
from typing import Optional

from gevent import ssl as gssl

NODE_FILES = ("ServerTLSCAFile", "ServerTLSCertFile", "ServerTLSKeyFile")   # relative to the config file
NODE_KEYS = NODE_FILES + ("ServerTLSName",)


class TLSSettingError(ValueError):
    """A TLS setting that cannot work; str() starts with the setting's name."""


class NodeTLS:
    """How the pool's backend sockets speak TLS: the client context and the
    name sent and checked (None: the chain alone is checked)."""

    __slots__ = ("context", "server_name")

    def __init__(self, context: ssl.SSLContext, server_name: Optional[str]):
        self.context, self.server_name = context, server_name

    def wrap(self, sock) -> gssl.SSLSocket:
        """The handshake, on a connected gevent socket, within its timeout."""
        return self.context.wrap_socket(sock, server_hostname=self.server_name)


def node_tls(pool) -> Optional[NodeTLS]:
    """The client side of TLS to the nodes from a pool's settings (any object
    with the ServerTLS* attributes), or None when ServerTLS is off.  Every
    file is read now, so a bad one is found at start (and by `geproxy -t`),
    not at the first connection; raises TLSSettingError."""
    if not pool.ServerTLS:
        for key in NODE_KEYS:
            if getattr(pool, key, ""):
                raise TLSSettingError("%s: set, but ServerTLS is off (turn it on, or remove %s)" % (key, key))
        return None
    ctx = gssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)   # TLS 1.2 and newer
    name = pool.ServerTLSName or None
    if pool.ServerTLSCAFile:   # read even when not verifying: a wrong path is a mistake either way
        _readable("ServerTLSCAFile", pool.ServerTLSCAFile)
        try:
            ctx.load_verify_locations(cafile=pool.ServerTLSCAFile)
        except (ssl.SSLError, ValueError) as e:
            raise TLSSettingError("ServerTLSCAFile: %r holds no usable PEM certificate (%s)"
                                  % (pool.ServerTLSCAFile, describe(e))) from None
    elif pool.ServerTLSVerify:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    ctx.check_hostname = bool(pool.ServerTLSVerify and name)
    ctx.verify_mode = ssl.CERT_REQUIRED if pool.ServerTLSVerify else ssl.CERT_NONE
    cert, key = pool.ServerTLSCertFile, pool.ServerTLSKeyFile
    if key and not cert:
        raise TLSSettingError("ServerTLSKeyFile: set without ServerTLSCertFile")
    if cert:
        _readable("ServerTLSCertFile", cert)
        if key:
            _readable("ServerTLSKeyFile", key)
        try:
            ctx.load_cert_chain(cert, key or None, password=_no_password)
        except _Encrypted:
            raise TLSSettingError("%s: the private key is encrypted; geproxy needs it unencrypted"
                                  % ("ServerTLSKeyFile" if key else "ServerTLSCertFile")) from None
        except ssl.SSLError as e:
            raise TLSSettingError(_chain_error(cert, key, e)) from None
    return NodeTLS(ctx, name)


def for_pool(pool) -> Optional[NodeTLS]:
    """node_tls(pool), made once per pool and kept on its settings object, so
    every dial of the pool shares one context (and its session cache)."""
    made = pool.__dict__.get("node_tls", _UNSET)
    if made is _UNSET:
        made = pool.node_tls = node_tls(pool)
    return made


def describe(e: BaseException) -> str:
    """A TLS failure in a few words: 'certificate verify failed: self-signed
    certificate', 'tlsv13 alert certificate required'."""
    if isinstance(e, ssl.SSLCertVerificationError) and e.verify_message:
        return "certificate verify failed: %s" % e.verify_message
    if isinstance(e, ssl.SSLEOFError):
        return "the node closed the TLS connection (a node wanting a client certificate does that)"
    if isinstance(e, ssl.SSLError) and e.reason:
        return e.reason.lower().replace("_", " ")
    return str(e) or e.__class__.__name__


_UNSET = object()


class _Encrypted(Exception):
    pass


def _no_password():
    raise _Encrypted()   # never prompt on the terminal


def _readable(key, path):
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise TLSSettingError("%s: cannot read %r: %s" % (key, path, e.strerror or e)) from None


def _chain_error(cert, key, e):
    """Which file is wrong, from what it holds (OpenSSL says only 'PEM lib')."""
    if "KEY_VALUES_MISMATCH" in (e.reason or "").upper():
        return "ServerTLSKeyFile: the key does not match the certificate in ServerTLSCertFile"
    if b"-----BEGIN CERTIFICATE-----" not in _head(cert):
        return "ServerTLSCertFile: %r holds no PEM certificate" % cert
    if b"PRIVATE KEY-----" not in _head(key or cert):
        if key:
            return "ServerTLSKeyFile: %r holds no PEM private key" % key
        return "ServerTLSCertFile: %r holds no private key: set ServerTLSKeyFile" % cert
    return "ServerTLSCertFile/ServerTLSKeyFile: cannot load %r%s: %s" % (
        cert, " with %r" % key if key else "", describe(e))


def _head(path):
    try:
        with open(path, "rb") as f:
            return f.read(1 << 20)
    except OSError:
        return b""
