"""INFO: predixy's sections and field names, counters that move with traffic,
the Servers section against the cluster's own CLUSTER NODES, and secrets kept out."""

import time

import psutil
import pytest
import redis

from clusterhelp import keys_per_master, owner_of
from conftest import HOST, replies, start_proxy
from geproxy import __version__
from geproxy.resp import command
from opshelp import ask, bulk_text, call, config_get, fields, info, section, server_blocks, wait_for

SECRET = 's3cret-Zq81'
SECTIONS = ['Proxy', 'SystemResource', 'Stats', 'Servers', 'LatencyMonitor']


@pytest.fixture(scope='module')
def p(cluster):
    # The cluster has no password; its nopass default user accepts AUTH default <anything>,
    # so a backend password can be configured and must then never be shown.
    px = start_proxy(cluster, top={'Name': 'info-test'}, pool={'User': 'default', 'Password': SECRET})
    yield px
    px.stop()


def headers(text):
    return [line[2:].strip() for line in text.splitlines() if line.startswith('# ')]


REDIS_DEFAULT = ['Server', 'Clients', 'Memory', 'Persistence', 'Stats', 'Replication', 'CPU', 'Cluster', 'Keyspace']


def test_all_sections_in_order(p):
    text = info(p.port)
    assert headers(text) == SECTIONS + REDIS_DEFAULT
    assert headers(info(p.port, 'default')) == SECTIONS + REDIS_DEFAULT
    for args in (['all'], ['everything']):
        assert headers(info(p.port, *args)) == SECTIONS + REDIS_DEFAULT + ['Commandstats', 'Errorstats'], args


def test_one_section_or_several(p, raw):
    assert headers(info(p.port, 'stats')) == ['Stats', 'Stats']   # predixy's, then Redis's
    assert headers(info(p.port, 'STATS')) == ['Stats', 'Stats']
    assert headers(info(p.port, 'server', 'clients')) == ['Server', 'Clients']
    assert headers(info(p.port, 'servers', 'proxy')) == ['Proxy', 'Servers']
    # RESP3: a verbatim string with the same text
    c = raw(p.port)
    assert ask(c, 'HELLO', '3')[:1] == b'%'
    reply = ask(c, 'INFO', 'stats')
    assert reply.startswith(b'=') and b'txt:# Stats\r\n' in reply


def test_proxy_section(p):
    before = time.time()
    f = fields(section(info(p.port, 'proxy'), 'Proxy'))
    assert f['Version'] == __version__
    assert f['Name'] == 'info-test'
    assert f['Bind'] == '%s:%d' % (HOST, p.port)
    assert f['RedisMode'] == 'proxy'
    assert f['SingleThread'] == 'true'
    assert f['WorkerThreads'] == '1'
    uptime = int(f['Uptime'])
    assert 0 <= uptime < 120, f
    since = time.mktime(time.strptime(f['UptimeSince'], '%Y-%m-%d %H:%M:%S'))
    assert abs((before - uptime) - since) <= 2, f
    time.sleep(1.1)
    assert int(fields(info(p.port, 'proxy'))['Uptime']) >= uptime + 1


def test_system_resource(p):
    f = fields(section(info(p.port, 'SystemResource'), 'SystemResource'))
    assert {'UsedMemory', 'MaxMemory', 'MaxRSS', 'UsedCpuSys', 'UsedCpuUser'} <= set(f)
    rss = psutil.Process(p.pid).memory_info().rss
    used = int(f['UsedMemory'])
    assert 0.7 * rss < used < 1.3 * rss, (used, rss)
    assert int(f['MaxMemory']) == 0
    assert int(f['MaxRSS']) >= 0.8 * used
    assert float(f['UsedCpuUser']) > 0 and float(f['UsedCpuSys']) >= 0


def test_stats_count_traffic(p, raw, cluster):
    before = fields(info(p.port, 'stats'))
    assert {'Accept', 'ClientConnections', 'TotalRequests', 'TotalResponses', 'TotalRecvClientBytes',
            'TotalSendServerBytes', 'TotalRecvServerBytes', 'TotalSendClientBytes'} <= set(before)
    servers_before = {b['Server']: b for b in server_blocks(info(p.port, 'servers'))}
    c = raw(p.port)
    sent = b''.join(command('SET', 'info:k', 'v%d' % i) + command('GET', 'info:k') for i in range(20))
    c.send(sent)
    got = c.recv_until(replies(40))
    assert got.count(b'+OK\r\n') == 20
    during = fields(info(p.port, 'stats'))
    assert int(during['ClientConnections']) == int(before['ClientConnections']) + 1
    c.close()
    after = fields(info(p.port, 'stats'))
    delta = {k: int(after[k]) - int(before[k]) for k in before if before[k].isdigit()}
    assert delta['Accept'] == 4            # the pipeline and three INFO connections
    assert delta['TotalRequests'] == 43    # 40 + INFO servers, during, after (counted on arrival)
    assert delta['TotalResponses'] == 43   # 40 + INFO before, servers, during (counted when sent)
    assert delta['TotalRecvClientBytes'] >= len(sent)
    assert delta['TotalSendServerBytes'] >= len(sent)
    assert delta['TotalRecvServerBytes'] >= len(got)
    assert delta['TotalSendClientBytes'] >= len(got)
    assert wait_for(lambda: fields(info(p.port, 'stats'))['ClientConnections'] == before['ClientConnections'])

    owner = '%s:%d' % (HOST, owner_of(cluster, 'info:k'))
    servers = {b['Server']: b for b in server_blocks(info(p.port, 'servers'))}
    o, ob = servers[owner], servers_before.get(owner, {})
    assert int(o['Requests']) - int(ob.get('Requests', 0)) >= 40, o
    assert int(o['Responses']) - int(ob.get('Responses', 0)) >= 40, o
    assert int(o['SendBytes']) - int(ob.get('SendBytes', 0)) >= len(sent)
    assert int(o['RecvBytes']) - int(ob.get('RecvBytes', 0)) >= len(got)
    assert int(o['Connections']) >= 1 and int(o['Connect']) >= 1
    for b in servers.values():
        assert b['CurrentIsFail'] == '0' and 'DC' in b
        if b['Role'] == 'slave':
            assert b['Requests'] == '0', b


def cluster_view(cluster):
    """{addr: (role, group)} from CLUSTER NODES of a live master."""
    text = cluster.client(cluster.masters()[0]).execute_command('CLUSTER', 'NODES').decode()
    view = {}
    for line in text.splitlines():
        w = line.split()
        if not w or 'fail' in w[2].split(','):
            continue
        addr = w[1].split('@')[0]
        view[addr] = ('master', w[0]) if 'master' in w[2] else ('slave', w[3])
    return view


def test_servers_match_cluster_nodes(p, cluster):
    def proxy_view():
        return {b['Server']: (b['Role'], b['Group']) for b in server_blocks(info(p.port, 'servers'))}
    expected = cluster_view(cluster)
    assert len(expected) == 6 and sum(r == 'master' for r, _ in expected.values()) == 3
    got = wait_for(lambda: proxy_view() == expected and proxy_view(), timeout=5)
    assert got == expected
    keys = ['Server', 'Role', 'Group', 'DC', 'CurrentIsFail', 'Connections', 'Connect', 'Requests',
            'Responses', 'SendBytes', 'RecvBytes']
    for b in server_blocks(info(p.port, 'servers')):
        assert [k for k in b if k in keys] == keys, b     # predixy's fields, in predixy's order
    # a replica's group is its master's id: every group names exactly one master and one replica
    groups = {}
    for role, group in got.values():
        groups.setdefault(group, []).append(role)
    assert sorted(map(sorted, groups.values())) == [['master', 'slave']] * 3


def test_backend_password_never_shown(p):
    assert call(p.port, 'SET', 'info:pw', 'x') == b'+OK\r\n'   # the password is in use and works
    text = info(p.port)
    assert SECRET not in text and 'Password' not in text
    everything = config_get(p.port, '*')
    assert 'Servers' in everything and 'Name' in everything
    assert not {'Password', 'User'} & set(everything)
    assert SECRET not in repr(everything)
    assert call(p.port, 'CONFIG', 'GET', 'password') == b'*0\r\n'
    assert call(p.port, 'CONFIG', 'GET', 'user') == b'*0\r\n'
    assert SECRET not in p.log()
    assert bulk_text(call(p.port, 'INFO', 'proxy')).count('\r\n') >= 10


def test_config_get_does_not_fetch_backend_secrets(p, cluster):
    """CONFIG GET of a name that is not geproxy's is answered by a master; its passwords
    (requirepass, masterauth: in a protected cluster, the backend Password) must not be."""
    masters = cluster.masters()
    for port in masters:   # harmless on a master: masterauth is only used when replicating
        cluster.client(port).config_set('masterauth', SECRET)
    try:
        got = {pat: config_get(p.port, pat) for pat in ('requirepass', 'masterauth', '*pass*', '*auth*')}
    finally:
        for port in masters:
            cluster.client(port).config_set('masterauth', '')
    assert SECRET not in repr(got), got
    assert not any({'requirepass', 'masterauth', 'masteruser'} & set(v) for v in got.values()), got


def test_redis_sections(p, cluster):
    """Redis's field names, with the proxy's own process and clients, and the data summed over masters."""
    import redis
    node = cluster.client(cluster.masters()[0])
    c = redis.Redis(host=HOST, port=p.port)
    got = c.info('everything')
    assert got['redis_version'] == node.info('server')['redis_version']
    assert got['process_id'] == p.pid and got['tcp_port'] == p.port
    assert got['connected_clients'] >= 1 and got['blocked_clients'] == 0
    assert 0.7 * psutil.Process(p.pid).memory_info().rss < got['used_memory_rss'] < 1.3 * psutil.Process(p.pid).memory_info().rss
    assert got['used_cpu_user'] > 0 and got['cluster_enabled'] == 0
    keys = sum(cluster.client(m).dbsize() for m in cluster.masters())
    if keys:
        assert abs(got['db0']['keys'] - keys) <= 50   # other tests may write meanwhile
    assert got['cmdstat_info']['calls'] >= 1
    # a client waiting in BLPOP is a blocked client, and a subscriber a pub/sub client
    import threading
    blocker = redis.Redis(host=HOST, port=p.port)
    t = threading.Thread(target=lambda: blocker.blpop('info:never', 2))
    t.start()
    assert wait_for(lambda: c.info('clients')['blocked_clients'] == 1, 2)
    t.join()
    assert c.info('clients')['blocked_clients'] == 0
    ps = c.pubsub()
    ps.subscribe('info:chan')
    assert wait_for(lambda: c.info('clients')['pubsub_clients'] == 1, 2)
    ps.close()
    blocker.close()
    c.close()


def test_persistence_counts_changes_over_the_masters(p, cluster):
    """rdb_changes_since_last_save is summed over the masters: writes to keys on
    different masters all count."""
    before = int(fields(info(p.port, 'persistence'))['rdb_changes_since_last_save'])
    c = redis.Redis(host=HOST, port=p.port)
    keys = [ks[0] for ks in keys_per_master(cluster, 'pers:k', 1).values()]
    for k in keys:
        c.set(k, 'v')
    after = int(fields(info(p.port, 'persistence'))['rdb_changes_since_last_save'])
    assert after == before + len(keys)
    c.delete(*keys)
    c.close()


def test_errorstats_summed_over_the_masters(p, cluster):
    """Error replies counted by the nodes, by their first word, over every master."""
    def count(code):
        row = fields(info(p.port, 'errorstats')).get('errorstat_' + code)
        return int(row.split('=')[1]) if row else 0
    before = count('GEPROXYTEST')
    c = redis.Redis(host=HOST, port=p.port)
    for k in [ks[0] for ks in keys_per_master(cluster, 'errs:k', 1).values()]:
        with pytest.raises(redis.ResponseError):
            c.eval("return redis.error_reply('GEPROXYTEST on ' .. KEYS[1])", 1, k)
    assert count('GEPROXYTEST') == before + len(cluster.masters())
    c.close()
