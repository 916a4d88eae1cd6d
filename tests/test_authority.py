"""[Authority]: predixy's client classes (password, mode, key prefixes), AUTH,
HELLO AUTH, redis-py, NOAUTH without a password-less class, and admin for all
without the section.  FLUSHALL is only ever sent with a bogus argument, so a
proxy that failed to refuse it would get a syntax error, not empty the cluster."""

import os
import tempfile

import pytest
import redis

from conftest import HOST, RawClient, free_port, render_config, replies, start_proxy
from geproxy.resp import command
from opshelp import ask, call, spawn

AUTHORITY = """\
[Authority]
[[default]]
Mode = read
[[ops]]
Password = bcd
Mode = admin
[[app]]
Password = def
Mode = write
ReadKeyPrefix = User, Stats
WriteKeyPrefix = User
"""
NOPERM_KEY = b'-NOPERM this user has no permissions to access one of the keys used as arguments\r\n'
WRONGPASS = b'-WRONGPASS invalid username-password pair or user is disabled.\r\n'


def noperm_cmd(name):
    return b"-NOPERM this user has no permissions to run the '%s' command\r\n" % name.encode()


@pytest.fixture(scope='module')
def p(cluster):
    px = start_proxy(cluster, extra_conf=AUTHORITY)
    yield px
    px.stop()


@pytest.fixture
def client(p):
    made = []

    def make(*auth):
        c = RawClient(p.port)
        made.append(c)
        if auth:
            assert ask(c, 'AUTH', *auth) == b'+OK\r\n'
        return c
    yield make
    for c in made:
        c.close()


def admin_set(p, key, value):
    c = RawClient(p.port)
    try:
        assert ask(c, 'AUTH', 'bcd') == b'+OK\r\n'
        return ask(c, 'SET', key, value)
    finally:
        c.close()


def test_before_auth_reads_only(p, client):
    admin_set(p, 'Other:pre', 'x')
    c = client()
    assert ask(c, 'GET', 'Other:pre') == b'$1\r\nx\r\n'
    assert ask(c, 'GET', 'User:pre') == b'$-1\r\n'
    assert ask(c, 'SET', 'User:pre', 'y') == noperm_cmd('set')
    assert ask(c, 'DEL', 'Other:pre') == noperm_cmd('del')
    assert ask(c, 'PUBLISH', 'chan', 'm') == noperm_cmd('publish')
    assert ask(c, 'EVAL', 'return 1', '0') == noperm_cmd('eval')
    assert ask(c, 'CONFIG', 'GET', 'maxmemory').startswith(b'-NOPERM')
    assert ask(c, 'FLUSHALL', 'BOGUSARG') == noperm_cmd('flushall')
    assert ask(c, 'PING') == b'+PONG\r\n'
    assert call(p.port, 'GET', 'Other:pre') == b'$1\r\nx\r\n'   # nothing was deleted


def test_app_class_key_prefixes(p, client):
    c = client('def')
    assert ask(c, 'SET', 'User:1', 'a') == b'+OK\r\n'
    assert ask(c, 'GET', 'User:1') == b'$1\r\na\r\n'
    assert ask(c, 'SET', 'Stats:1', 'b') == NOPERM_KEY
    assert ask(c, 'DEL', 'Stats:1') == NOPERM_KEY
    assert ask(c, 'GET', 'Stats:1') == b'$-1\r\n'          # Stats is readable
    assert ask(c, 'GET', 'Other:pre') == NOPERM_KEY
    assert ask(c, 'OBJECT', 'ENCODING', 'Other:pre') == NOPERM_KEY
    assert ask(c, 'XREAD', 'STREAMS', 'Other:s', '0') == NOPERM_KEY
    assert ask(c, 'RENAME', 'User:{t}a', 'Other:{t}b') == NOPERM_KEY
    # multi-key commands: every key is checked, one bad key refuses the whole command
    assert ask(c, 'MGET', 'User:1', 'Other:pre') == NOPERM_KEY
    assert ask(c, 'MGET', 'User:1', 'Stats:1') == b'*2\r\n$1\r\na\r\n$-1\r\n'
    assert ask(c, 'MSET', 'User:2', 'x', 'Stats:2', 'y') == NOPERM_KEY
    assert ask(c, 'MSET', 'User:2', 'x', 'User:3', 'y') == b'+OK\r\n'
    assert ask(c, 'EVAL', "return redis.call('GET', KEYS[1])", '1', 'Other:pre').startswith(b'-NOPERM')
    # a script could reach undeclared keys: refused to a class with prefixes (UnsafeScripts opts in)
    assert b'UnsafeScripts' in ask(c, 'EVAL', "return redis.call('GET', KEYS[1])", '1', 'User:1')
    # admin commands are refused
    assert ask(c, 'CONFIG', 'SET', 'MaxMemory', '0').startswith(b'-NOPERM')
    assert ask(c, 'FLUSHALL', 'BOGUSARG') == noperm_cmd('flushall')
    # nothing refused was written
    assert call(p.port, 'MGET', 'Stats:1', 'Stats:2') == b'*2\r\n$-1\r\n$-1\r\n'


def test_pipelined_checks_in_order(p, client):
    c = client()
    c.send(command('AUTH', 'def') + command('SET', 'User:p', '1') + command('SET', 'Stats:p', '2')
           + command('GET', 'Other:pre') + command('GET', 'User:p') + command('AUTH', 'bcd')
           + command('GET', 'Other:pre'))
    got = c.recv_until(replies(7))
    assert got == (b'+OK\r\n+OK\r\n' + NOPERM_KEY + NOPERM_KEY + b'$1\r\n1\r\n+OK\r\n$1\r\nx\r\n')


def test_refusal_inside_multi_aborts_the_transaction(p, client):
    """As Redis does for an ACL refusal while queueing: EXEC answers EXECABORT, nothing runs."""
    c = client('def')
    c.send(command('MULTI') + command('SET', 'User:{m}1', 'a') + command('SET', 'Stats:{m}1', 'b')
           + command('EXEC'))
    got = c.recv_until(replies(4))
    assert got.startswith(b'+OK\r\n+QUEUED\r\n' + NOPERM_KEY), got
    assert got.endswith(b'-EXECABORT Transaction discarded because of previous errors.\r\n'), got
    assert ask(c, 'GET', 'User:{m}1') == b'$-1\r\n'


def test_admin_class(p, client):
    c = client('bcd')
    assert ask(c, 'CONFIG', 'GET', 'MaxMemory') == b'*2\r\n$9\r\nMaxMemory\r\n$1\r\n0\r\n'
    assert ask(c, 'CONFIG', 'SET', 'MaxMemory', '0') == b'+OK\r\n'
    assert ask(c, 'SET', 'Other:admin', 'z') == b'+OK\r\n'
    assert ask(c, 'DEL', 'Other:admin') == b':1\r\n'


def test_auth_passwords_and_users(p, client):
    c = client()
    assert ask(c, 'AUTH', 'nope') == WRONGPASS
    assert ask(c, 'SET', 'User:w', '1') == noperm_cmd('set')   # still the default class
    assert ask(c, 'AUTH', 'app', 'def') == b'+OK\r\n'
    assert ask(c, 'SET', 'User:w', '1') == b'+OK\r\n'
    assert ask(c, 'AUTH', 'nope') == WRONGPASS
    assert ask(c, 'SET', 'User:w', '2') == b'+OK\r\n'             # a failed AUTH keeps the class
    assert ask(c, 'AUTH', 'ops', 'def') == WRONGPASS              # user must be the class's name
    assert ask(c, 'AUTH', 'stranger', 'def') == WRONGPASS
    assert ask(c, 'AUTH', 'app', 'bcd') == WRONGPASS
    assert ask(c, 'AUTH', 'default', 'bcd') == b'+OK\r\n'         # 'default' goes with any password
    assert ask(c, 'CONFIG', 'GET', 'maxmemory').startswith(b'*2')
    assert ask(c, 'AUTH', 'ops', 'bcd') == b'+OK\r\n'
    assert ask(c, 'AUTH', 'a', 'b', 'c').startswith(b'-ERR')


def test_hello_auth(p, client):
    c = client()
    reply = ask(c, 'HELLO', '3', 'AUTH', 'app', 'def')
    assert reply.startswith(b'%') and b'proto' in reply
    assert ask(c, 'SET', 'User:h', '1') == b'+OK\r\n'
    assert ask(c, 'SET', 'Stats:h', '1') == NOPERM_KEY
    d = client()
    assert ask(d, 'HELLO', '3', 'AUTH', 'default', 'wrong') == WRONGPASS
    assert ask(d, 'SET', 'User:h', '1') == noperm_cmd('set')


def test_redis_py_password(p):
    r = redis.Redis(host=HOST, port=p.port, password='def')   # redis-py 8: HELLO 3 AUTH default def
    try:
        assert r.set('User:py', 'v') is True
        assert r.get('User:py') == b'v'
        assert r.client_info()['resp'] == '3'
        with pytest.raises(redis.exceptions.NoPermissionError):
            r.set('Stats:py', 'v')
        with pytest.raises(redis.exceptions.NoPermissionError):
            r.get('Other:py')
    finally:
        r.close()
    r = redis.Redis(host=HOST, port=p.port, username='app', password='def', protocol=2)
    try:
        assert r.get('User:py') == b'v'
    finally:
        r.close()
    r = redis.Redis(host=HOST, port=p.port, password='wrong')
    try:
        with pytest.raises(redis.exceptions.AuthenticationError):
            r.ping()
    finally:
        r.close()


@pytest.fixture
def noauth_proxy(cluster):
    """Every class has a password: PING before AUTH says NOAUTH, so start_proxy cannot wait for +PONG."""
    port = free_port()
    conf = os.path.join(tempfile.mkdtemp(prefix='geproxy-test-'), 'proxy.conf')
    with open(conf, 'w') as f:
        f.write(render_config(cluster, port, extra_conf=AUTHORITY.replace('[[default]]\nMode = read\n', '')))
    px = spawn(conf, port, ready=lambda r: not r.startswith(b'-CLUSTERDOWN'))
    yield px
    px.stop()


def test_no_passwordless_class_means_noauth(noauth_proxy):
    px = noauth_proxy
    c = RawClient(px.port)
    try:
        assert ask(c, 'PING').startswith(b'-NOAUTH')
        assert ask(c, 'GET', 'User:1').startswith(b'-NOAUTH')
        assert ask(c, 'SET', 'User:1', 'x').startswith(b'-NOAUTH')
        assert ask(c, 'HELLO', '3').startswith(b'-NOAUTH')
        assert ask(c, 'AUTH', 'nope') == WRONGPASS
        assert ask(c, 'GET', 'User:1').startswith(b'-NOAUTH')
        assert ask(c, 'AUTH', 'def') == b'+OK\r\n'
        assert ask(c, 'SET', 'User:1', 'x') == b'+OK\r\n'
        assert ask(c, 'QUIT') == b'+OK\r\n'
    finally:
        c.close()
    assert call(px.port, 'QUIT') == b'+OK\r\n'


def test_no_authority_section_everyone_is_admin(proxy):
    assert call(proxy.port, 'CONFIG', 'GET', 'MaxMemory') == b'*2\r\n$9\r\nMaxMemory\r\n$1\r\n0\r\n'
    assert call(proxy.port, 'CONFIG', 'SET', 'MaxMemory', '0') == b'+OK\r\n'
    assert call(proxy.port, 'SET', 'Other:free', 'x') == b'+OK\r\n'
    assert call(proxy.port, 'EVAL', 'return 1', '0') == b':1\r\n'
