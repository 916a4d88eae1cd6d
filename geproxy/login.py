"""A client logged in as one of Redis's own ACL users.

Without an [Authority] section the proxy has no classes of its own, and
`AUTH user pass` (or HELLO ... AUTH) with a user other than `default` logs the
client in as that Redis ACL user: the proxy checks the pair against a master,
then carries the client's commands on node links and private connections that
are themselves logged in as that user.  Redis then enforces the user's ACL on
everything the client does, keys, scripts and listings included, where the
proxy could not see it (a script's undeclared keys).

Every sender names its connection by a `via`: the RESP version (2 or 3) for
connections logged in with the pool's own credentials, or a Login for a user's.
"""


class Login(tuple):
    """(proto, user, password): hashable, so it keys a server's links and idle
    private connections as a plain protocol number does."""

    __slots__ = ()

    def __new__(cls, proto, user, password):
        return tuple.__new__(cls, (proto, user, password))


def credentials(via, cfg):
    """(proto, user, password) to log a connection named `via` in with."""
    if via.__class__ is Login:
        return via
    return via, cfg.User, cfg.Password


def proto_of(via):
    return via[0] if via.__class__ is Login else via
