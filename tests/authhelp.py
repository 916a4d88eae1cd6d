"""What the Authority tests share: the client classes most of them use, a
proxy with them, and raw clients logged in as one class or another."""

import pytest
import redis

from conftest import RawClient, start_proxy
from opshelp import ask

# default: read pub.*; ops: admin; app: reads User and Stats, writes User.
CLASSES = """\
[Authority]
[[default]]
Mode = read
KeyPrefix = pub.
[[ops]]
Password = ops-pw
Mode = admin
[[app]]
Password = app-pw
Mode = write
ReadKeyPrefix = User, Stats
WriteKeyPrefix = User
"""


def proxy_with(conf: str):
    """A module-scoped fixture `p`: a proxy with this [Authority] text."""
    @pytest.fixture(scope="module")
    def p(cluster):
        px = start_proxy(cluster, extra_conf=conf)
        yield px
        px.stop()
    return p


def raw_clients(timeout: float = 5.0):
    """A fixture `client`: client(*auth) is a RawClient on `p`, logged in with
    AUTH *auth when given; all are closed at teardown."""
    @pytest.fixture
    def client(p):
        made = []

        def make(*auth):
            c = RawClient(p.port, timeout=timeout)
            made.append(c)
            if auth and auth[0] is not None:
                assert ask(c, "AUTH", *auth) == b"+OK\r\n"
            return c
        yield make
        for c in made:
            c.close()
    return client


def not_refused(client, commands: list) -> list:
    """(args, reply) of each command `client` ran without Redis's "no
    permissions" refusal: what a walk-around test wants empty."""
    allowed = []
    for args in commands:
        try:
            reply = client.execute_command(*args)
        except redis.ResponseError as e:
            reply = e
        if not (isinstance(reply, redis.ResponseError) and "no permissions" in str(reply)):
            allowed.append((args, reply))
    return allowed
