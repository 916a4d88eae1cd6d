"""A client logged in as one of Redis's own ACL users.

Without an [Authority] section the proxy has no classes of its own, and
`AUTH user pass` (or HELLO ... AUTH) with a user other than `default` logs the
client in as that Redis ACL user: the proxy checks the pair against a master,
then carries the client's commands on node links and private connections that
are themselves logged in as that user.  Redis then enforces the user's ACL on
everything the client does, keys, scripts and listings included, where the
proxy could not see it (a script's undeclared keys).

Every sender names its connection by a `via`: the RESP version (2 or 3) for
connections logged in with the pool's own credentials to database 0, or a
Login for a user's, or for another database (SELECT, in pools of groups).
"""


class Login(tuple):
    """(proto, user, password, db): hashable, so it keys a server's links and
    idle private connections as a plain protocol number does.  A user of None
    logs in with the pool's own credentials."""

    __slots__ = ()

    def __new__(cls, proto, user, password, db=0):
        return tuple.__new__(cls, (proto, user, password, db))


def credentials(via, cfg):
    """(proto, user, password, db) to log a connection named `via` in with."""
    if via.__class__ is Login:
        if via[1] is None:
            return via[0], cfg.User, cfg.Password, via[3]
        return via
    return via, cfg.User, cfg.Password, 0


def proto_of(via):
    return via[0] if via.__class__ is Login else via
