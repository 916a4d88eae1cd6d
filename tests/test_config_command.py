"""CONFIG GET / SET / REWRITE / RESETSTAT on the proxy's own settings and on Redis's."""

import time

import pytest

from conftest import HOST, RawClient, start_proxy
from geproxy.settings import BY_NAME
from opshelp import ask, call, config_get, fields, info, server_blocks

HIDDEN = {'password', 'user'}


@pytest.fixture(scope='module')
def p(cluster):
    px = start_proxy(cluster, top={'Name': 'cfg-test', 'MaxMemory': '1G', 'LogInfoSample': 1})
    yield px
    px.stop()


@pytest.fixture
def restore(p):
    """Put the online settings back after a test."""
    yield
    call(p.port, 'CONFIG', 'SET', 'MaxMemory', '1G', 'ClientTimeout', '0', 'LogInfoSample', '1',
         'AllowMissLog', 'yes')


def test_get_everything(p, cluster):
    got = config_get(p.port, '*')
    ours = {s.name for k, s in BY_NAME.items() if k not in HIDDEN and 'ClusterServerPool' in s.pools}
    assert ours <= set(got)
    assert not {'Sentinels', 'Hash', 'Databases'} & set(got)  # the group pools' settings are not this pool's
    assert 'databases' in got  # so Redis's own is shown
    theirs = set(got) - ours   # Redis's own settings, from a master, secrets removed
    assert {'maxmemory-policy', 'list-max-listpack-size', 'save', 'appendonly'} <= theirs
    assert not {'requirepass', 'masterauth', 'masteruser'} & theirs
    assert 'maxmemory' in theirs  # Redis's; the proxy's is MaxMemory
    assert got['Name'] == 'cfg-test' and got['Bind'] == '%s:%d' % (HOST, p.port)
    assert got['WorkerProcesses'] == '1' and got['MaxMemory'] == str(1 << 30)
    assert got['MasterReadPriority'] == '100' and got['ServerFailureLimit'] == '3'
    assert got['Servers'] == ', '.join(cluster.addrs)
    assert got['BufSize'] == '16384' and got['AllowMissLog'] == 'true'


def test_get_globs(p):
    samples = config_get(p.port, 'Log*Sample')
    assert sorted(samples) == sorted('Log%sSample' % w for w in ('Verb', 'Debug', 'Info', 'Notice', 'Warn', 'Error'))
    assert samples['LogInfoSample'] == '1' and samples['LogVerbSample'] == '0'
    # A name Redis has too: the proxy's when spelled as the proxy spells it, else Redis's.
    assert config_get(p.port, 'MaxMemory') == {'MaxMemory': str(1 << 30)}
    assert config_get(p.port, 'maxmemory') == {'maxmemory': '0'}
    assert config_get(p.port, 'MAXMEMORY') == {'MAXMEMORY': '0'}  # Redis answers in the asked spelling
    assert config_get(p.port, '?ame') == {'Name': 'cfg-test'}
    assert config_get(p.port, 'nothing-like-this*') == {}
    two = call(p.port, 'CONFIG', 'GET', 'MaxMemory', 'clienttimeout')
    assert two == b'*4\r\n$9\r\nMaxMemory\r\n$10\r\n1073741824\r\n$13\r\nClientTimeout\r\n$1\r\n0\r\n'


def test_set_online_settings(p, restore):
    assert call(p.port, 'CONFIG', 'SET', 'MaxMemory', '900M') == b'+OK\r\n'
    assert config_get(p.port, 'MaxMemory') == {'MaxMemory': str(900 << 20)}
    assert fields(info(p.port, 'SystemResource'))['MaxMemory'] == str(900 << 20)
    assert call(p.port, 'CONFIG', 'SET', 'loginfosample', '7', 'allowmisslog', 'no') == b'+OK\r\n'
    assert config_get(p.port, 'LogInfoSample') == {'LogInfoSample': '7'}
    assert config_get(p.port, 'AllowMissLog') == {'AllowMissLog': 'false'}
    assert call(p.port, 'SET', 'cfg:k', 'v') == b'+OK\r\n'


def test_maxmemory_spelled_as_redis_spells_it_is_redis(p, cluster, restore):
    """CONFIG SET maxmemory is what Redis clients and tools mean: every node's
    limit, leaving the proxy's own MaxMemory alone."""
    try:
        assert call(p.port, 'CONFIG', 'SET', 'maxmemory', '1') == b'+OK\r\n'
        assert config_get(p.port, 'MaxMemory') == {'MaxMemory': str(1 << 30)}
        for addr in cluster.addrs:
            assert config_get(int(addr.rsplit(':', 1)[1]), 'maxmemory') == {'maxmemory': '1'}
        assert call(p.port, 'SET', 'cfg:k', 'v').startswith(b"-OOM command not allowed when used memory > 'maxmemory'")
    finally:
        assert call(p.port, 'CONFIG', 'SET', 'maxmemory', '0') == b'+OK\r\n'
    assert call(p.port, 'SET', 'cfg:k', 'v') == b'+OK\r\n'


def test_client_timeout_closes_new_idle_clients(p, restore):
    assert call(p.port, 'CONFIG', 'SET', 'ClientTimeout', '1') == b'+OK\r\n'
    c = RawClient(p.port)
    assert ask(c, 'PING') == b'+PONG\r\n'
    t = time.time()
    assert c.wait_closed(4), 'idle client not closed with ClientTimeout 1'
    assert 0.8 <= time.time() - t <= 2.5
    busy = RawClient(p.port)
    for _ in range(4):             # activity keeps a client open past the 1s timeout
        assert ask(busy, 'PING') == b'+PONG\r\n'
        time.sleep(0.4)
    assert call(p.port, 'CONFIG', 'SET', 'ClientTimeout', '0') == b'+OK\r\n'
    assert ask(busy, 'PING') == b'+PONG\r\n'
    busy.close()


def test_client_timeout_applies_to_clients_already_idle(p, restore):
    """Lowering ClientTimeout online must reach clients that are already connected and idle."""
    idle = RawClient(p.port)
    assert ask(idle, 'PING') == b'+PONG\r\n'
    assert call(p.port, 'CONFIG', 'SET', 'ClientTimeout', '1') == b'+OK\r\n'
    closed = idle.wait_closed(4)
    idle.close()
    assert closed, 'a client idle since before CONFIG SET ClientTimeout 1 was still open after 4s'


@pytest.mark.parametrize('name,value', [('Bind', '127.0.0.1:1'), ('Name', 'x'), ('WorkerProcesses', '2'),
                                        ('BufSize', '4096'), ('Servers', '127.0.0.1:1'), ('Log', '/tmp/x')])
def test_set_refuses_offline_settings(p, name, value):
    before = config_get(p.port, name)
    reply = call(p.port, 'CONFIG', 'SET', name, value)
    assert reply.startswith(b'-ERR') and b'online' in reply and name.encode() in reply, reply
    assert config_get(p.port, name) == before


@pytest.mark.parametrize('name,value', [('MaxMemory', 'abc'), ('MaxMemory', '-5'), ('ClientTimeout', '-1'),
                                        ('ClientTimeout', 'soon'), ('LogInfoSample', 'x'),
                                        ('AllowMissLog', 'maybe')])
def test_set_refuses_bad_values(p, name, value):
    before = config_get(p.port, name)
    reply = call(p.port, 'CONFIG', 'SET', name, value)
    assert reply.startswith(b'-ERR CONFIG SET failed: ') and value.encode() in reply, reply
    assert config_get(p.port, name) == before


def test_set_several_is_all_or_nothing(p, restore):
    """As in Redis 7: if one of the parameters fails, none is applied."""
    reply = call(p.port, 'CONFIG', 'SET', 'MaxMemory', '500M', 'ClientTimeout', 'soon')
    assert reply.startswith(b'-ERR'), reply
    assert config_get(p.port, 'MaxMemory') == {'MaxMemory': str(1 << 30)}


def test_bad_config_syntax(p):
    for args in (['CONFIG', 'SET', 'nosuch', '1'], ['CONFIG', 'SET', 'MaxMemory'], ['CONFIG', 'GET'],
                 ['CONFIG', 'FROB'], ['CONFIG', 'SET', 'Password', 'x']):
        reply = call(p.port, *args)
        assert reply.startswith(b'-ERR'), (args, reply)
    assert call(p.port, 'CONFIG', 'SET', 'nosuch', '1').startswith(b"-ERR Unknown option")


def test_resetstat_zeroes_counters(p):
    c = RawClient(p.port)
    try:
        for i in range(10):
            assert ask(c, 'SET', 'cfg:r%d' % i, 'v') == b'+OK\r\n'
        before = fields(info(p.port, 'stats'))
        assert int(before['TotalRequests']) >= 10 and int(before['TotalSendServerBytes']) > 0
        assert ask(c, 'CONFIG', 'RESETSTAT') == b'+OK\r\n'
        reply = ask(c, 'INFO')
    finally:
        c.close()
    text = reply.split(b'\r\n', 1)[1].decode()
    s = fields(text.split('# Servers')[0].split('# Stats')[1])
    assert s['Accept'] == '0' and s['ClientConnections'] == '1'
    assert s['TotalRequests'] == '1'          # this INFO
    assert s['TotalResponses'] == '1'         # the +OK of RESETSTAT
    assert s['TotalRecvClientBytes'] == str(len(b'*1\r\n$4\r\nINFO\r\n'))
    assert s['TotalSendClientBytes'] == '5'
    assert s['TotalSendServerBytes'] == '0' and s['TotalRecvServerBytes'] == '0'
    for b in server_blocks(text):
        assert (b['Requests'], b['Responses'], b['SendBytes'], b['RecvBytes']) == ('0',) * 4, b


def node_config(cluster, name):
    return {port: cluster.client(port).config_get(name)[name] for port in cluster.alive()}


def test_redis_setting_goes_to_every_node(p, cluster):
    before = node_config(cluster, 'list-max-listpack-size')
    try:
        assert call(p.port, 'CONFIG', 'SET', 'list-max-listpack-size', '17', 'set-max-intset-entries', '99') \
            == b'+OK\r\n'
        assert set(node_config(cluster, 'list-max-listpack-size').values()) == {'17'}
        assert set(node_config(cluster, 'set-max-intset-entries').values()) == {'99'}
        assert len(node_config(cluster, 'list-max-listpack-size')) == 6   # masters and replicas
        assert config_get(p.port, 'list-max-*') == {'list-max-listpack-size': '17', 'list-max-ziplist-size': '17'}
    finally:
        call(p.port, 'CONFIG', 'SET', 'list-max-listpack-size', before[cluster.ports[0]],
             'set-max-intset-entries', '512')


def test_proxy_and_redis_settings_in_one_set(p, cluster, restore):
    assert call(p.port, 'CONFIG', 'SET', 'MaxMemory', '800M', 'hash-max-listpack-entries', '77') == b'+OK\r\n'
    assert config_get(p.port, 'MaxMemory') == {'MaxMemory': str(800 << 20)}
    assert set(node_config(cluster, 'hash-max-listpack-entries').values()) == {'77'}
    call(p.port, 'CONFIG', 'SET', 'hash-max-listpack-entries', '128')


@pytest.mark.parametrize('name', ['requirepass', 'masterauth', 'port', 'bind-source-addr', 'cluster-node-timeout', 'dir',
                                  'dbfilename', 'replicaof', 'tls-port'])
def test_settings_that_cut_the_proxy_off_are_refused(p, cluster, name):
    before = node_config(cluster, name)
    reply = call(p.port, 'CONFIG', 'SET', name, '1')
    assert reply.startswith(b"-ERR geproxy does not change '%s'" % name.encode()), reply
    assert node_config(cluster, name) == before


def test_a_refused_set_changes_nothing(p, cluster):
    """One bad value: no node keeps any part of the SET.  Every node refused it
    alike, so the error is Redis's own, as one Redis would give it."""
    before = node_config(cluster, 'zset-max-listpack-entries')
    reply = call(p.port, 'CONFIG', 'SET', 'zset-max-listpack-entries', '55', 'maxmemory-policy', 'no-such-policy')
    assert reply.startswith(b"-ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy')"), reply
    assert b'(node ' not in reply
    assert node_config(cluster, 'zset-max-listpack-entries') == before
    unknown = call(p.port, 'CONFIG', 'SET', 'no-such-setting', '1')
    assert unknown.startswith(b'-ERR') and b'no-such-setting' in unknown


def test_rewrite_and_resetstat_reach_every_node(p, cluster):
    cluster.client(cluster.ports[0]).incr('cfg:stat')   # a command counted on a node
    assert call(p.port, 'CONFIG', 'RESETSTAT') == b'+OK\r\n'
    for port in cluster.alive():
        assert cluster.client(port).info('stats')['total_commands_processed'] <= 2
    reply = call(p.port, 'CONFIG', 'REWRITE')
    assert reply == b'+OK\r\n' or b'(node 127.0.0.1:' in reply, reply
