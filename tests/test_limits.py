"""Limits: MaxMemory (file and CONFIG SET) refuses commands that grow memory
with -OOM while reads go on; ClientTimeout from the file; a small BufSize still
carries big values and long pipelines."""

import time

import pytest

from conftest import RawClient, replies
from geproxy.resp import command
from opshelp import ask, call, config_get, fields, info, wait_for

OOM = b"-OOM command not allowed when used memory > 'MaxMemory'\r\n"


def test_maxmemory_online(make_proxy):
    p = make_proxy(top={'MaxMemory': '1G'})
    c = RawClient(p.port)
    assert ask(c, 'SET', 'lim:a', '1') == b'+OK\r\n'
    used = int(fields(info(p.port, 'SystemResource'))['UsedMemory'])
    assert 0 < used < 1 << 30
    assert call(p.port, 'CONFIG', 'SET', 'MaxMemory', str(used // 2)) == b'+OK\r\n'
    t = time.time()
    assert wait_for(lambda: ask(c, 'SET', 'lim:b', '2') == OOM, timeout=1.0), 'SET not refused within 1s'
    assert time.time() - t < 1.0
    # writes that grow memory are refused, on the fast path and in pipelines alike
    c.send(command('SET', 'lim:c', '3') + command('GET', 'lim:a') + command('INCR', 'lim:n')
           + command('RPUSH', 'lim:l', 'x') + command('DEL', 'lim:zz') + command('PING'))
    got = c.recv_until(replies(6))
    assert got == OOM + b'$1\r\n1\r\n' + OOM + OOM + b':0\r\n+PONG\r\n'
    d = RawClient(p.port)                      # a new client is refused too
    assert ask(d, 'SET', 'lim:d', '4') == OOM
    assert ask(d, 'GET', 'lim:a') == b'$1\r\n1\r\n'
    assert ask(d, 'MGET', 'lim:a', 'lim:b') == b'*2\r\n$1\r\n1\r\n$-1\r\n'
    assert fields(info(p.port, 'SystemResource'))['MaxMemory'] == str(used // 2)
    assert call(p.port, 'GET', 'lim:b') == b'$-1\r\n'   # the refused SET did not happen
    assert 'memory over MaxMemory' in p.log()

    assert call(p.port, 'CONFIG', 'SET', 'MaxMemory', '1G') == b'+OK\r\n'
    assert ask(c, 'SET', 'lim:b', '2') == b'+OK\r\n'
    assert ask(d, 'SET', 'lim:d', '4') == b'+OK\r\n'
    assert call(p.port, 'CONFIG', 'SET', 'MaxMemory', str(used // 2)) == b'+OK\r\n'
    assert ask(c, 'SET', 'lim:b', '2') == OOM
    assert call(p.port, 'CONFIG', 'SET', 'MaxMemory', '0') == b'+OK\r\n'   # 0: no limit
    assert ask(c, 'SET', 'lim:b', '2') == b'+OK\r\n'
    assert 'back under MaxMemory' in p.log()
    c.close()
    d.close()


def test_maxmemory_from_the_file(make_proxy):
    p = make_proxy(top={'MaxMemory': '1M'})     # far below any Python process
    assert config_get(p.port, 'MaxMemory') == {'MaxMemory': str(1 << 20)}
    assert wait_for(lambda: call(p.port, 'SET', 'lim:f', 'x') == OOM, timeout=1.0)
    assert call(p.port, 'GET', 'lim:f') == b'$-1\r\n'
    assert call(p.port, 'PING') == b'+PONG\r\n'


def test_client_timeout_from_the_file(make_proxy):
    p = make_proxy(top={'ClientTimeout': 1})
    idle = RawClient(p.port)
    assert ask(idle, 'PING') == b'+PONG\r\n'
    t = time.time()
    assert idle.wait_closed(4)
    assert 0.8 <= time.time() - t <= 2.5
    assert wait_for(lambda: 'idle for 1s: closed' in p.log(), timeout=2)
    blpop = RawClient(p.port)     # a client waiting for its reply is not idle
    blpop.send(command('BLPOP', 'lim:never', '1.5'))
    assert blpop.recv_until(replies(1), timeout=4) == b'*-1\r\n'
    idle.close()
    blpop.close()


@pytest.fixture(scope='module')
def small(cluster):
    from conftest import start_proxy
    p = start_proxy(cluster, top={'BufSize': 512})
    yield p
    p.stop()


def test_small_bufsize_big_value(small):
    assert config_get(small.port, 'BufSize') == {'BufSize': '512'}
    big = bytes(range(256)) * 4096            # 1 MiB, every byte value
    for proto in (2, 3):
        c = RawClient(small.port, timeout=10)
        if proto == 3:
            assert ask(c, 'HELLO', '3')[:1] == b'%'
        assert ask(c, 'SET', 'lim:big%d' % proto, big, timeout=10) == b'+OK\r\n'
        got = ask(c, 'GET', 'lim:big%d' % proto, timeout=10)
        assert got == b'$%d\r\n' % len(big) + big + b'\r\n'
        assert ask(c, 'STRLEN', 'lim:big%d' % proto) == b':%d\r\n' % len(big)
        c.close()


def test_small_bufsize_long_pipeline(small):
    c = RawClient(small.port, timeout=10)
    value = b'v' * 700                        # each reply is bigger than a read
    data, expect = b'', b''
    for i in range(500):
        data += command('SET', 'lim:p%d' % i, value + b'%d' % i) + command('GET', 'lim:p%d' % i)
        expect += b'+OK\r\n' + b'$%d\r\n%s%d\r\n' % (len(value) + len(str(i)), value, i)
    c.send(data)
    got = c.recv_until(len(expect), timeout=15)
    assert got == expect
    assert ask(c, 'PING') == b'+PONG\r\n'
    c.close()
