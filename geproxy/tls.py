"""TLS contexts, made from the settings.

To clients (TLSBind and the top-level TLS* settings): one server context for
the TLS listener, made at start and made again from the files on SIGHUP, so a
renewed certificate is served to new clients while connected ones keep the
session they have (ClientTLS.reload).  A bad file at SIGHUP keeps the old
context and logs why.

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
CLIENT_FILES = ("TLSCertFile", "TLSKeyFile", "TLSCAFile")                 # relative to the config file
CLIENT_KEYS = CLIENT_FILES + ("TLSProtocols", "TLSCiphers")
PROTOCOLS = {"tlsv1": ssl.TLSVersion.TLSv1, "tlsv1.1": ssl.TLSVersion.TLSv1_1,
             "tlsv1.2": ssl.TLSVersion.TLSv1_2, "tlsv1.3": ssl.TLSVersion.TLSv1_3}


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
        _load_chain(ctx, cert, key, "ServerTLSCertFile", "ServerTLSKeyFile")
    return NodeTLS(ctx, name)


def client_context(cfg) -> Optional[gssl.SSLContext]:
    """The TLS listener's server context from the top-level settings (any
    object with the TLS* attributes), or None when TLSBind is empty.  Every
    file is read now, so a bad one is found at start (and by `geproxy -t`);
    raises TLSSettingError naming the setting."""
    if not cfg.TLSBind:
        for key in CLIENT_KEYS + ("TLSAuthClients",):
            value = getattr(cfg, key, "")
            if value and value != "off":
                raise TLSSettingError("%s: set, but TLSBind is empty (set TLSBind, or remove %s)" % (key, key))
        return None
    cert, key, ca, auth = cfg.TLSCertFile, cfg.TLSKeyFile, cfg.TLSCAFile, cfg.TLSAuthClients
    if not cert:
        raise TLSSettingError("TLSCertFile: required with TLSBind (the certificate chain the listener presents)")
    ctx = gssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.options |= ssl.OP_NO_RENEGOTIATION   # a client cannot make us write while we read
    ctx.minimum_version, ctx.maximum_version = protocols(cfg.TLSProtocols)
    if cfg.TLSCiphers:
        try:
            ctx.set_ciphers(cfg.TLSCiphers)
        except ssl.SSLError:
            raise TLSSettingError("TLSCiphers: no cipher matches %r" % cfg.TLSCiphers) from None
    _load_chain(ctx, cert, key, "TLSCertFile", "TLSKeyFile")
    if auth == "off":
        if ca:
            raise TLSSettingError("TLSCAFile: set, but TLSAuthClients is off: client certificates are not "
                                  "checked (set TLSAuthClients to optional or require, or remove TLSCAFile)")
        return ctx
    if not ca:
        raise TLSSettingError("TLSCAFile: required with TLSAuthClients %s (the CA client certificates "
                              "must chain to)" % auth)
    _readable("TLSCAFile", ca)
    try:
        ctx.load_verify_locations(cafile=ca)
    except (ssl.SSLError, ValueError) as e:
        raise TLSSettingError("TLSCAFile: %r holds no usable PEM certificate (%s)" % (ca, describe(e))) from None
    ctx.verify_mode = ssl.CERT_REQUIRED if auth == "require" else ssl.CERT_OPTIONAL
    return ctx


def protocols(names: list) -> tuple:
    """(minimum, maximum) TLS version from TLSProtocols ('TLSv1.2 TLSv1.3', any
    case, spaces or commas); empty: TLS 1.2 and newer.  Python sets a range,
    so the versions named must be neighbours."""
    words = [w.lower() for item in names for w in str(item).replace(",", " ").split()]
    if not words:
        return ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.MAXIMUM_SUPPORTED
    order = list(PROTOCOLS)
    for w in words:
        if w not in PROTOCOLS:
            raise TLSSettingError("TLSProtocols: unknown %r (TLSv1, TLSv1.1, TLSv1.2, TLSv1.3)" % w)
    picked = sorted({order.index(w) for w in words})
    if picked[-1] - picked[0] + 1 != len(picked):
        raise TLSSettingError("TLSProtocols: %s leaves a gap: name neighbouring versions (e.g. TLSv1.2 TLSv1.3)"
                              % " ".join(order[i] for i in picked))
    return PROTOCOLS[order[picked[0]]], PROTOCOLS[order[picked[-1]]]


class ClientTLS:
    """The TLS listener's current context; reload() makes it again from the
    files (SIGHUP).  Connected clients keep theirs: only new handshakes use
    the new one."""

    __slots__ = ("cfg", "context")

    def __init__(self, cfg):
        self.cfg = cfg
        self.context = client_context(cfg)

    def reload(self) -> Optional[str]:
        """Read the certificate, key and CA again; None when done, else why not
        (the old context stays)."""
        try:
            self.context = client_context(self.cfg)
        except TLSSettingError as e:
            return str(e)
        return None


def handshake_failure(e: BaseException) -> str:
    """Why a client's TLS handshake failed, in a few words for the log."""
    if isinstance(e, ssl.SSLCertVerificationError):
        return "client certificate refused: %s" % (e.verify_message or e.reason or e)
    reason = (getattr(e, "reason", None) or "").upper()
    if reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
        return "no client certificate (TLSAuthClients require)"
    if reason in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "UNKNOWN_PROTOCOL"):
        return "not a TLS client hello (%s): plain RESP or HTTP sent to the TLS port?" % reason.lower().replace("_", " ")
    if reason == "UNSUPPORTED_PROTOCOL":
        return "unsupported protocol: the client's TLS versions are not in TLSProtocols"
    return describe(e)


def for_pool(pool) -> Optional[NodeTLS]:
    """node_tls(pool), made once per pool and kept on its settings object, so
    every dial of the pool shares one context and no dial reads a file."""
    made = vars(pool).get("node_tls", _UNSET)
    if made is _UNSET:   # (a stand-in for the settings, in a test, may have no ServerTLS: none)
        made = pool.node_tls = node_tls(pool) if hasattr(pool, "ServerTLS") else None
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


def _load_chain(ctx, cert, key, cert_key, key_key):
    """Our certificate and key into `ctx`; TLSSettingError names the setting at fault."""
    _readable(cert_key, cert)
    if key:
        _readable(key_key, key)
    try:
        ctx.load_cert_chain(cert, key or None, password=_no_password)
    except _Encrypted:
        raise TLSSettingError("%s: the private key is encrypted; geproxy needs it unencrypted"
                              % (key_key if key else cert_key)) from None
    except ssl.SSLError as e:
        raise TLSSettingError(_chain_error(cert, key, e, cert_key, key_key)) from None


def _chain_error(cert, key, e, cert_key, key_key):
    """Which file is wrong, from what it holds (OpenSSL says only 'PEM lib')."""
    if "KEY_VALUES_MISMATCH" in (e.reason or "").upper():
        return "%s: the key does not match the certificate in %s" % (key_key if key else cert_key, cert_key)
    if b"-----BEGIN CERTIFICATE-----" not in _head(cert):
        return "%s: %r holds no PEM certificate" % (cert_key, cert)
    if b"PRIVATE KEY-----" not in _head(key or cert):
        if key:
            return "%s: %r holds no PEM private key" % (key_key, key)
        return "%s: %r holds no private key: set %s" % (cert_key, cert, key_key)
    return "%s/%s: cannot load %r%s: %s" % (cert_key, key_key, cert, " with %r" % key if key else "", describe(e))


def _head(path):
    try:
        with open(path, "rb") as f:
            return f.read(1 << 20)
    except OSError:
        return b""
