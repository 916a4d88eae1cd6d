"""TLS to the nodes (the pool's ServerTLS* settings) against real Redis that
speaks TLS only: a 3+3 cluster started with tls-port, port 0, tls-cluster and
tls-replication (so the addresses it announces are TLS ones, and nothing could
pass in clear), Sentinel groups over TLS, and nodes the proxy must refuse.
Certificates are made at test time (tlshelp.py); the nodes ask for client
certificates (Redis's default), so mutual TLS is exercised throughout.  The
cluster tests' clients reach the proxy over TLS too (TLSBind): TLS on both
sides, as a deployment that needs one usually needs the other."""

import os
import signal
import subprocess
import threading
import time
from types import SimpleNamespace

import pytest
import redis

from clusterhelp import proxy_info
from conftest import HOST, free_port, start_proxy, wait_for
from geproxy.devcluster import DevCluster, command, free_ports, tls_conf, tls_context
from geproxy.devsentinel import DevSentinel
from geproxy.distribution import Placement
from geproxy.slots import key_slot
from tlshelp import make_ca, make_cert

BOOT = 90           # seconds a TLS cluster or proxy may take to come up on a busy machine


@pytest.fixture(scope='module')
def certs(tmp_path_factory):
    d = str(tmp_path_factory.mktemp('tls'))
    ca, other = make_ca(d, 'ca'), make_ca(d, 'other-ca')
    return SimpleNamespace(ca=ca, node=make_cert(d, 'node', ca), client=make_cert(d, 'proxy', ca, sans=[]),
                           other_ca=other, rogue=make_cert(d, 'rogue', other), dir=d)


@pytest.fixture(scope='module')
def tc(certs):
    dc = DevCluster(tls=certs.node, node_timeout_ms=2000).start(BOOT)
    yield dc
    dc.stop()


def tls_pool(certs, **more):
    pool = {'ServerTLS': 'yes', 'ServerTLSCAFile': certs.ca.cert, 'ServerTLSCertFile': certs.client.cert,
            'ServerTLSKeyFile': certs.client.key, 'ServerTimeout': 5}
    pool.update(more)
    return {k: v for k, v in pool.items() if v is not None}


@pytest.fixture
def tproxy(tc, certs):
    """start(**pool) -> a proxy on the TLS cluster, with a TLS listener (.tls_port)
    beside its plain one (for the readiness check); all are stopped at teardown."""
    started = []

    def start(extra_conf='', **pool):
        port = free_port()
        top = {'TLSBind': '%s:%d' % (HOST, port), 'TLSCertFile': certs.node.cert, 'TLSKeyFile': certs.node.key}
        started.append(start_proxy(tc, top=top, pool=tls_pool(certs, **pool), extra_conf=extra_conf,
                                   timeout=BOOT))
        started[-1].tls_port, started[-1].ca = port, certs.ca.cert
        return started[-1]
    yield start
    for p in started:
        p.stop()


def client(p, **kw):
    """redis-py to the proxy: over TLS when it has a TLS listener."""
    if getattr(p, 'tls_port', None):
        kw = dict({'port': p.tls_port, 'ssl': True, 'ssl_ca_certs': p.ca}, **kw)
    return redis.Redis(host=HOST, **dict({'port': p.port, 'socket_timeout': 20}, **kw))


def owner(tc, key):
    """The port of the master owning `key`, as the cluster says."""
    slot = key_slot(key.encode() if isinstance(key, str) else key)
    for first, last, master, *_ in tc.client(tc.masters()[0]).execute_command('CLUSTER', 'SLOTS'):
        if first <= slot <= last:
            return int(master[1])
    raise AssertionError('slot %d not served' % slot)


def key_on(tc, port, prefix):
    i = 0
    while owner(tc, '%s:%d' % (prefix, i)) != port:
        i += 1
    return '%s:%d' % (prefix, i)


# -- the core command set, over TLS --

def test_core_commands_reach_the_nodes_over_tls(tc, tproxy):
    p = tproxy()
    r, r3 = client(p), client(p, protocol=3)
    keys = ['core:%d' % i for i in range(120)]
    for k in keys:
        assert r.set(k, 'v-' + k)
    assert {owner(tc, k) for k in keys} == set(tc.masters())          # every master was written
    for k in keys[:30]:
        assert tc.client(owner(tc, k)).get(k) == ('v-' + k).encode()  # where the slot map says
    assert r.mget(keys) == [('v-' + k).encode() for k in keys]         # split over slots, merged
    assert r3.get(keys[0]) == ('v-' + keys[0]).encode()
    r.delete(*['core:counter:{%d}' % i for i in range(7)])
    pipe = r.pipeline(transaction=False)
    for i in range(1000):                              # 1000 = 7 * 142 + 6: the last counter gets 142
        pipe.incr('core:counter:{%d}' % (i % 7))
    assert pipe.execute()[-7:] == [142] + [143] * 6
    r.hset('core:h', mapping={'a': 1, 'b': 2})
    assert r.hgetall('core:h') == {b'a': b'1', b'b': b'2'}
    assert r.eval("return redis.call('GET', KEYS[1])", 1, keys[1]) == ('v-' + keys[1]).encode()
    with r.pipeline(transaction=True) as t:                            # MULTI/EXEC: a private connection
        t.set('{core}a', 1).incr('{core}a').get('{core}a')
        assert t.execute() == [True, 2, b'2']
    pushed = threading.Timer(0.3, lambda: client(p).lpush('core:queue', 'job'))
    pushed.start()
    assert r.blpop('core:queue', timeout=10) == (b'core:queue', b'job')  # blocking: a private connection
    pushed.join()
    seen = set(r.scan_iter(match='core:*', count=100))
    assert {k.encode() for k in keys} <= seen
    assert r.dbsize() >= len(keys)
    assert r.delete(*keys) == len(keys)
    assert proxy_info(p.port, 'servers').count('Server:') == 6   # the TLS addresses the nodes announce


# -- slots moving and a master failing, with TLS between the nodes too --

def _node_id(tc, port):
    return tc.client(port).execute_command('CLUSTER', 'MYID').decode()


def _set_slot(tc, slot, port):
    for m in tc.masters():
        tc.client(m).execute_command('CLUSTER', 'SETSLOT', slot, 'NODE', _node_id(tc, port))


def _start_migration(tc, slot, src, dst):
    tc.client(dst).execute_command('CLUSTER', 'SETSLOT', slot, 'IMPORTING', _node_id(tc, src))
    tc.client(src).execute_command('CLUSTER', 'SETSLOT', slot, 'MIGRATING', _node_id(tc, dst))


def _finish_migration(tc, slot, src, dst):
    for k in tc.client(src).execute_command('CLUSTER', 'GETKEYSINSLOT', slot, 1000):
        tc.client(src).execute_command('MIGRATE', HOST, dst, k, 0, 5000)
    _set_slot(tc, slot, dst)


def test_moved_and_ask_during_a_slot_migration(tc, tproxy):
    p = tproxy(RefreshInterval=60)
    r = client(p)
    src, dst = tc.masters()[:2]
    key = key_on(tc, src, 'mig')
    slot, stay = key_slot(key.encode()), '{%s}stay' % key
    r.set(key, 'm')
    r.set(stay, 's')
    a, b = tc.client(src), tc.client(dst)
    _start_migration(tc, slot, src, dst)
    try:
        a.execute_command('MIGRATE', HOST, dst, '', 0, 5000, 'KEYS', key)    # node to node, over TLS
        asks = a.info('errorstats').get('errorstat_ASK', {}).get('count', 0)
        assert r.get(key) == b'm'            # ASK, then ASKING + GET on dst
        assert r.get(stay) == b's'           # still on src
        assert a.info('errorstats')['errorstat_ASK']['count'] == asks + 1
        _finish_migration(tc, slot, src, dst)
        moved = a.info('errorstats').get('errorstat_MOVED', {}).get('count', 0)
        assert r.get(stay) == b's'           # MOVED, followed, the map updated
        assert r.set(key, 'after') and b.get(key) == b'after'
        assert a.info('errorstats')['errorstat_MOVED']['count'] == moved + 1
    finally:
        _finish_migration(tc, slot, src, dst)   # a no-op when done
        _start_migration(tc, slot, dst, src)
        _finish_migration(tc, slot, dst, src)
        tc.wait_ok(60)


# -- pub/sub and big replies --

def test_pubsub_over_tls(tc, tproxy):
    p = tproxy()
    sub = client(p).pubsub()
    sub.subscribe('tls:news')
    sub.psubscribe('tls:p:*')
    for _ in range(2):
        assert sub.get_message(timeout=10)['type'] in ('subscribe', 'psubscribe')
    pub = client(p)
    assert pub.publish('tls:news', 'hello') == 1
    assert pub.publish('tls:p:x', 'pattern') == 1
    got = [sub.get_message(timeout=10) for _ in range(2)]
    assert [(m['type'], m['data']) for m in got] == [('message', b'hello'), ('pmessage', b'pattern')]
    sub.close()


def test_big_replies_over_tls(tc, tproxy):
    p = tproxy()
    r = client(p)
    big = os.urandom(1 << 20) * 20                     # 20 MiB: some 1300 TLS records each way
    t = time.time()
    assert r.set('tls:big', big)
    assert r.get('tls:big') == big
    took = time.time() - t
    r.delete('tls:list')
    for i in range(0, 100000, 10000):
        r.rpush('tls:list', *range(i, i + 10000))
    assert r.lrange('tls:list', 0, -1) == [b'%d' % i for i in range(100000)]
    small, errors, done = client(p), [], threading.Event()

    def reader():  # a big reply in flight never holds up another client of the node
        try:
            while not done.is_set():
                s = time.time()
                assert small.set('{tls:big}:s', 'x') and small.get('{tls:big}:s') == b'x'
                errors.append(time.time() - s) if time.time() - s > 5 else None
        except Exception as e:
            errors.append(e)
    th = threading.Thread(target=reader)
    th.start()
    pipe = r.pipeline(transaction=False)
    for _ in range(3):                                 # 60 MiB in flight: below ClientOutputLimit
        pipe.get('tls:big')
    assert pipe.execute() == [big] * 3
    done.set()
    th.join()
    assert errors == []
    print('20 MiB SET+GET over TLS to the node: %.2fs' % took)
    r.delete('tls:big', 'tls:list')


# -- Authority in front of a TLS backend --

AUTHORITY = """\
[Authority]
[[default]]
Mode = read
[[app]]
Password = app-pw
Mode = write
KeyPrefix = app:
"""


def test_authority_over_tls(tc, tproxy):
    p = tproxy(extra_conf=AUTHORITY)
    r = client(p)
    with pytest.raises(redis.exceptions.NoPermissionError):
        r.set('app:x', 1)
    assert r.execute_command('AUTH', 'app-pw')
    assert r.set('app:x', 1) and r.get('app:x') == b'1'
    with pytest.raises(redis.exceptions.NoPermissionError):
        r.set('other:x', 1)
    assert tc.client(owner(tc, 'app:x')).get('app:x') == b'1'


# -- what must be refused: names, certificates, settings --

def _error_of(r, key):
    with pytest.raises(redis.ResponseError) as e:
        r.get(key)
    return str(e.value)


def test_server_name_is_checked_when_set(tc, tproxy):
    ok = tproxy(ServerTLSName='localhost')            # in the node certificate's SANs
    assert client(ok).set('name:ok', 1)
    bad = tproxy(ServerTLSName='redis.example')        # not in them: refused, reported
    r = client(bad)
    assert 'not reached any cluster node' in _error_of(r, 'name:ok')
    assert wait_for(lambda: 'Hostname mismatch' in bad.log(), 20), bad.log_tail()
    assert r.ping() and '# Proxy' in proxy_info(bad.port, 'proxy')          # the proxy stays up


def test_node_certificate_from_another_ca_is_refused(tc, certs, tproxy):
    p = tproxy(ServerTLSCAFile=certs.other_ca.cert)
    r = client(p)
    assert 'not reached any cluster node' in _error_of(r, 'rogue:x')
    assert wait_for(lambda: 'certificate verify failed' in p.log(), 20), p.log_tail()
    line = next(x for x in p.log().splitlines() if 'certificate verify failed' in x)
    assert 'TLS handshake with 127.0.0.1:' in line and 'Traceback' not in p.log()
    assert r.ping() and '# Proxy' in proxy_info(p.port, 'proxy')


def test_nodes_wanting_a_client_certificate_say_so(tc, tproxy):
    p = tproxy(ServerTLSCertFile=None, ServerTLSKeyFile=None)
    r = client(p)
    assert 'not reached any cluster node' in _error_of(r, 'nocert:x')
    assert wait_for(lambda: 'certificate required' in p.log() or 'wanting a client certificate' in p.log(), 20), \
        p.log_tail()
    assert 'Traceback' not in p.log() and r.ping()


def _standalone(certs, port, cert, d):
    """A lone TLS-only redis-server whose certificate is `cert`; it trusts our CA."""
    files = SimpleNamespace(ca=certs.ca.cert, cert=cert.cert, key=cert.key)
    conf = os.path.join(d, 'redis-%d.conf' % port)
    with open(conf, 'w') as f:
        f.write('bind %s\nprotected-mode no\nsave ""\nappendonly no\ndir %s\n' % (HOST, d) + tls_conf(port, files))
    proc = subprocess.Popen(['redis-server', conf], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    ctx = tls_context(SimpleNamespace(ca=certs.ca.cert, cert=certs.client.cert, key=certs.client.key))
    ctx.verify_mode = 0          # the rogue node is not ours to trust; we only wait for it
    assert wait_for(lambda: _pings(port, ctx), 30), 'redis-server on %d did not start' % port
    return proc


def _pings(port, ctx):
    try:
        return command(HOST, port, 'PING', timeout=1, tls=ctx) == 'PONG'
    except (OSError, RuntimeError):
        return False


def test_a_rogue_node_fails_its_own_keys_only(certs, tmp_path):
    """Groups of plain nodes, one whose certificate our CA did not sign: its
    keys get a clear -ERR naming the TLS failure, the other group's are served,
    the proxy stays up and logs the node and the reason."""
    good_port, rogue_port = free_ports(2)
    procs = [_standalone(certs, good_port, certs.node, str(tmp_path)),
             _standalone(certs, rogue_port, certs.rogue, str(tmp_path))]
    pool = ''.join('%s = %s\n' % kv for kv in tls_pool(certs, ServerFailureLimit=3).items())
    text = ('Bind = %s:%%d\n[StandaloneServerPool]\n%s[[good]]\nServers = %s:%d\n[[rogue]]\nServers = %s:%d\n'
            % (HOST, pool, HOST, good_port, HOST, rogue_port))
    p = start_proxy(None, text=lambda port: text % port, timeout=BOOT)
    try:
        r = client(p)
        place = Placement('crc16', '', 'modula', 2)
        good = next('g:%d' % i for i in range(100) if place.group_of(b'g:%d' % i) == 0)
        bad = next('b:%d' % i for i in range(100) if place.group_of(b'b:%d' % i) == 1)
        assert r.set(good, 'fine') and r.get(good) == b'fine'
        err = _error_of(r, bad)
        assert err.startswith('geproxy: server %s:%d failed: TLS handshake' % (HOST, rogue_port)), err
        assert 'certificate verify failed' in err
        errs = [_error_of(r, bad) for _ in range(4)]     # ServerFailureLimit 3: then marked failed
        assert 'marked failed' in errs[-1] and all('TLS handshake' in e for e in errs[:2]), errs
        assert r.get(good) == b'fine' and r.ping()
        lines = [x for x in p.log().splitlines() if 'link to %s:%d failed' % (HOST, rogue_port) in x]
        assert lines and 'certificate verify failed' in lines[0], p.log_tail()
        assert 'Traceback' not in p.log()
    finally:
        p.stop()
        for proc in procs:
            proc.kill()
            proc.wait(10)


# -- Sentinel groups over TLS --

def test_sentinel_groups_over_tls_follow_a_failover(certs, tmp_path):
    d = DevSentinel(groups=2, tls=certs.node, base_dir=str(tmp_path)).start(BOOT)
    p = None
    try:
        pool = ''.join('%s = %s\n' % kv for kv in tls_pool(certs, ServerTimeout=1).items())
        text = ('Bind = %s:%%d\n[SentinelServerPool]\nSentinels = %s\nRefreshInterval = 1\n%s'
                '[[shard001]]\n[[shard002]]\n' % (HOST, ', '.join(d.sentinels), pool))
        p = start_proxy(None, text=lambda port: text % port, timeout=BOOT)
        r = client(p)
        place = Placement('crc16', '', 'modula', 2)
        keys = ['st:%d' % i for i in range(40)]
        for k in keys:
            assert r.set(k, k)
        for k in keys:
            master = d.master_of(d.names[place.group_of(k.encode())])
            assert d.command(master, 'GET', k) == k
        mine = [k for k in keys if place.group_of(k.encode()) == 0]
        old = d.master_of('shard001')
        replica = d.group_ports['shard001'][1]
        assert wait_for(lambda: d.command(replica, 'GET', mine[-1]) == mine[-1], 10)   # replicated over TLS
        d.kill(old)
        killed = time.time()
        assert wait_for(lambda: d.master_of('shard001') != old, 60), 'Sentinel did not promote the replica'
        promoted = time.time()

        def served():
            try:
                return r.get(mine[0]) == mine[0].encode()
            except redis.RedisError:
                return False
        assert wait_for(served, 10, 0.02)
        took = time.time() - promoted
        print('Sentinel over TLS: served %.3fs after the promotion (%.2fs after the kill)'
              % (took, promoted - killed))
        assert took < 3.0, took        # +switch-master heard over TLS, not the next RefreshInterval alone
        assert [r.get(k) for k in mine] == [k.encode() for k in mine]
    finally:
        if p is not None:
            p.stop()
        d.stop()


# -- last: a master killed (kill -9) and failed over; the module's cluster is put back after --

def test_failover_of_a_killed_master(tc, tproxy):
    p = tproxy(ServerTimeout=1, ServerFailureLimit=3, ServerRetryTimeout=1)
    r = client(p, socket_timeout=5)
    victim = tc.masters()[0]
    key = key_on(tc, victim, 'fo')
    assert r.set(key, 'kept')
    assert r.execute_command('WAIT', 1, 5000) >= 1     # on its replica before the kill
    tc.kill(victim, signal.SIGKILL)
    killed = time.time()

    def served():
        try:
            return r.get(key) == b'kept'
        except redis.RedisError:
            return False
    try:
        assert wait_for(served, 60, 0.05), p.log_tail()
        took = time.time() - killed
        print('kill -9 of a TLS master: served again %.2fs after' % took)
        assert took < 30
        assert r.set(key, 'after') and r.get(key) == b'after'
    finally:
        tc.restart(victim, timeout=BOOT)
        tc.wait_ok(BOOT)
