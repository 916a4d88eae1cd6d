"""Pools of groups against real Redis Sentinels (geproxy.devsentinel: two groups
of master + replica, three Sentinels, down-after-milliseconds 2000), and the
StandaloneServerPool with fixed groups.  No mocks: keys are checked where they
land, on the nodes themselves."""

import threading
import time

import pytest
import redis

from conftest import HOST, start_proxy
from geproxy.devcluster import command
from geproxy.devsentinel import DevSentinel
from geproxy.distribution import Placement


@pytest.fixture(scope='module')
def ds():
    d = DevSentinel(groups=2).start()
    yield d
    d.stop()


def sentinel_conf(ds, pool='', top='', sentinels=None):
    def text(port):
        return ('Bind = %s:%d\n%s[SentinelServerPool]\nSentinels = %s\nRefreshInterval = 1\n%s'
                '[[shard001]]\n[[shard002]]\n' % (HOST, port, top, ', '.join(sentinels or ds.sentinels), pool))
    return text


def node(ds, port, db=0):
    return redis.Redis(host=ds.host, port=port, db=db, socket_timeout=5)


def masters(ds):
    return [ds.master_of(n) for n in ds.names]


@pytest.mark.parametrize('hash_name,tag', [('crc16', '{}'), ('atol', ''), ('crc16', '')])
def test_keys_land_on_the_group_the_hash_says(ds, hash_name, tag):
    pool = 'Hash = %s\nHashTag = "%s"\nDistribution = modula\n' % (hash_name, tag)
    place = Placement(hash_name, tag, 'modula', 2)
    keys = [b'%d' % i for i in range(20)] + [b'user:{%d}:x' % i for i in range(20)] + [b'k%03d' % i for i in range(20)]
    for m in masters(ds):  # what an earlier placement left would be found on the wrong group
        node(ds, m).flushall()
    p = start_proxy(None, text=sentinel_conf(ds, pool))
    try:
        r = redis.Redis(port=p.port)
        for k in keys:
            r.set(b'place:' + k if hash_name != 'atol' else k, b'v' + k)
        ms = masters(ds)
        for k in keys:
            key = b'place:' + k if hash_name != 'atol' else k
            group = place.group_of(key)
            assert node(ds, ms[group]).get(key) == b'v' + k, (key, group)
            assert node(ds, ms[1 - group]).get(key) is None
        seen = {place.group_of(b'place:' + k if hash_name != 'atol' else k) for k in keys}
        assert seen == {0, 1}
    finally:
        p.stop()
    p = start_proxy(None, text=sentinel_conf(ds, pool))  # the same file places keys the same way again
    try:
        r = redis.Redis(port=p.port)
        assert [r.get(b'place:' + k if hash_name != 'atol' else k) for k in keys] == [b'v' + k for k in keys]
    finally:
        p.stop()


def test_select_split_scan_and_transactions(ds):
    p = start_proxy(None, text=sentinel_conf(ds, 'HashTag = "{}"\nDatabases = 4\n'))
    try:
        r = redis.Redis(port=p.port)
        r3 = redis.Redis(port=p.port, db=3)
        r3.set('dbkey', 'three')
        assert r.get('dbkey') is None and r3.get('dbkey') == b'three'
        with pytest.raises(redis.ResponseError, match='out of range'):
            redis.Redis(port=p.port, db=4).get('x')
        place = Placement('crc16', '{}', 'modula', 2)
        assert any(node(ds, m, 3).get('dbkey') == b'three' for m in masters(ds))
        assert node(ds, masters(ds)[place.group_of(b'dbkey')], 3).get('dbkey') == b'three'
        # multi-key commands split over groups and merge back in order
        keys = ['split:%d' % i for i in range(30)]
        assert {place.group_of(k.encode()) for k in keys} == {0, 1}
        r.mset({k: k.upper() for k in keys})
        assert r.mget(keys) == [k.upper().encode() for k in keys]
        assert r.exists(*keys) == 30
        # SCAN walks every group
        assert sorted(r.scan_iter('split:*', count=7)) == sorted(k.encode() for k in keys)
        assert r.delete(*keys) == 30
        # a transaction in one group works; keys of two groups get a CROSSSLOT-style error
        with r.pipeline(transaction=True) as t:
            t.set('{acct}:a', 1).incr('{acct}:a').get('{acct}:a')
            assert t.execute() == [True, 2, b'2']
        a, b = next((x, y) for x in keys for y in keys if place.group_of(x.encode()) != place.group_of(y.encode()))
        with pytest.raises(redis.ResponseError, match="don't hash to the same group .they are in shard001, shard002"):
            with r.pipeline(transaction=True) as t:
                t.set(a, 1).set(b, 2)
                t.execute()
        with pytest.raises(redis.ResponseError, match="same group .they are in shard001, shard002"):
            r.eval("return 1", 2, a, b)
    finally:
        p.stop()


def test_replica_reads_and_authority(ds):
    pool = 'MasterReadPriority = 0\nDynamicSlaveReadPriority = 100\n'
    top = ('[Authority]\n[[guest]]\nMode = read\nKeyPrefix = public:\n[[reader]]\nPassword = rd\nMode = read\n'
           '[[writer]]\nPassword = wr\nMode = write\n')
    p = start_proxy(None, text=lambda port: sentinel_conf(ds, pool)(port) + top)
    try:
        w = redis.Redis(port=p.port, password='wr')
        rd = redis.Redis(port=p.port, password='rd')
        w.set('rr:key', 'v')
        with pytest.raises(redis.ResponseError):
            rd.set('rr:key', 'x')
        with pytest.raises(redis.ResponseError):  # before AUTH: the guest class, its prefix only
            redis.Redis(port=p.port).get('rr:key')
        deadline = time.time() + 5
        while rd.get('rr:key') != b'v' and time.time() < deadline:  # the replica catches up
            time.sleep(0.05)
        assert rd.get('rr:key') == b'v'
        # reads went to the replicas: their command counts grew, not the masters' GET counts
        replicas = [ports[1] if ports[0] == ds.master_of(n) else ports[0] for n, ports in ds.group_ports.items()]
        gets = sum(int(node(ds, port).info('commandstats').get('cmdstat_get', {}).get('calls', 0)) for port in replicas)
        assert gets >= 1
    finally:
        p.stop()


def test_sentinels_down(ds):
    """Two of three Sentinels down: the proxy keeps working (it asks the one left).
    All down when it starts: it starts, its own commands answer, keyed ones get a
    clear error until a Sentinel answers."""
    p = start_proxy(None, text=sentinel_conf(ds))
    try:
        r = redis.Redis(port=p.port)
        for port in ds.sentinel_ports[:2]:
            ds.kill(port)
        for i in range(30):  # across several refreshes
            r.set('sd:%d' % i, i)
            assert r.get('sd:%d' % i) == b'%d' % i
            time.sleep(0.05)
        ds.kill(ds.sentinel_ports[2])
        q = start_proxy(None, text=sentinel_conf(ds))
        try:
            rq = redis.Redis(port=q.port)
            assert rq.ping() is True
            assert rq.info('clients')['connected_clients'] >= 1
            with pytest.raises(redis.ResponseError, match="masters yet .no Sentinel"):
                rq.get('sd:1')
            for port in ds.sentinel_ports:
                ds.restart(port)
            deadline = time.time() + 15
            while time.time() < deadline:
                try:
                    if rq.get('sd:1') == b'1':
                        break
                except redis.ResponseError:
                    time.sleep(0.2)
            assert rq.get('sd:1') == b'1'
        finally:
            q.stop()
        assert r.get('sd:2') == b'2'
    finally:
        p.stop()
        deadline = time.time() + 20
        while not ds.ready() and time.time() < deadline:
            time.sleep(0.2)


def _synced(ds, name):
    master = ds.master_of(name)
    info = node(ds, master).info('replication')
    return info.get('slave0', {}).get('offset', -1) >= info['master_repl_offset']


def test_failover_follows_sentinel_within_a_second(tmp_path):
    """kill -9 of a group's master: once Sentinel promotes the replica the proxy
    serves that group again within 1 s; acknowledged, replicated writes are
    kept; the other group is never interrupted."""
    d = DevSentinel(groups=2, base_dir=str(tmp_path)).start()
    p = None
    try:
        p = start_proxy(None, text=sentinel_conf(d, 'ServerTimeout = 1\n'))
        r = redis.Redis(port=p.port, socket_timeout=5)
        place = Placement('crc16', '', 'modula', 2)
        keys = ['fo:%d' % i for i in range(200)]
        for k in keys:
            r.set(k, k)
        mine = [k for k in keys if place.group_of(k.encode()) == 0]
        other = [k for k in keys if place.group_of(k.encode()) == 1]
        deadline = time.time() + 10
        while not _synced(d, 'shard001') and time.time() < deadline:
            time.sleep(0.05)
        assert _synced(d, 'shard001')
        errors, worst, stop = [], [0.0], threading.Event()

        def other_group():
            c = redis.Redis(port=p.port, socket_timeout=10)
            i = 0
            while not stop.is_set():
                t = time.time()
                try:
                    c.set(other[i % len(other)], 'x%d' % i)
                    c.get(other[i % len(other)])
                except redis.RedisError as e:
                    errors.append(repr(e))
                worst[0] = max(worst[0], time.time() - t)
                i += 1
                time.sleep(0.01)
        t = threading.Thread(target=other_group)
        t.start()
        old = d.master_of('shard001')
        d.kill(old)
        killed = time.time()
        while d.master_of('shard001') == old:
            assert time.time() - killed < 30, 'Sentinel did not promote the replica'
            time.sleep(0.02)
        promoted = time.time()
        while True:
            try:
                if r.get(mine[0]) == mine[0].encode():
                    break
            except redis.RedisError:
                pass
            assert time.time() - promoted < 5
            time.sleep(0.02)
        served = time.time() - promoted
        stop.set()
        t.join()
        assert served <= 1.0, 'served again %.2fs after the promotion' % served
        assert [r.get(k) for k in mine] == [k.encode() for k in mine]
        assert errors == [], errors[:3]
        assert worst[0] < 1.0, 'the other group waited %.2fs' % worst[0]
        with open(str(tmp_path / 'failover.txt'), 'w') as f:
            f.write('served %.3fs after promotion; promotion %.2fs after the kill\n' % (served, promoted - killed))
        print('failover: served %.3fs after the promotion, which came %.2fs after the kill' % (served, promoted - killed))
    finally:
        if p is not None:
            p.stop()
        d.stop()


def test_standalone_fixed_groups(ds):
    """RefreshMethod fixed: each group's nodes from the file, the first the master."""
    ms = masters(ds)

    def text(port):
        return ('Bind = %s:%d\n[StandaloneServerPool]\nRefreshMethod = fixed\nHash = atol\n'
                '[[a]]\nServers = %s:%d\n[[b]]\nServers = %s:%d\n' % (HOST, port, ds.host, ms[0], ds.host, ms[1]))
    p = start_proxy(None, text=text)
    try:
        r = redis.Redis(port=p.port)
        for i in range(10):
            r.set('%d' % i, i)
        for i in range(10):
            assert node(ds, ms[i % 2]).get('%d' % i) == b'%d' % i
        assert r.mget(['%d' % i for i in range(10)]) == [b'%d' % i for i in range(10)]
        servers = command(HOST, p.port, 'INFO', 'Servers')  # predixy's section, as text
        assert 'Server:%s:%d\r\nRole:master\r\nGroup:a\r\n' % (ds.host, ms[0]) in servers
        assert 'Server:%s:%d\r\nRole:master\r\nGroup:b\r\n' % (ds.host, ms[1]) in servers
    finally:
        p.stop()


def test_blocking_and_pubsub(ds):
    """As in cluster mode: a blocked pop is served by a push from another client,
    in the key's group; PUBLISH counts the subscribers (they all live on one group's master)."""
    p = start_proxy(None, text=sentinel_conf(ds))
    try:
        r = redis.Redis(port=p.port)
        r.delete('bq:1', 'bq:2')
        got = {}
        t = threading.Thread(target=lambda: got.update(v=redis.Redis(port=p.port).blpop(['bq:2'], 5)))
        t.start()
        time.sleep(0.3)
        r.rpush('bq:2', 'x')
        t.join(6)
        assert got.get('v') == (b'bq:2', b'x')
        sub = redis.Redis(port=p.port).pubsub()
        sub.subscribe('news')
        assert sub.get_message(timeout=2)['type'] == 'subscribe'
        assert r.publish('news', 'hello') == 1
        msg = sub.get_message(timeout=2)
        assert msg['type'] == 'message' and msg['data'] == b'hello'
        sub.close()
    finally:
        p.stop()


def test_standalone_groups_found_by_sentinel(ds):
    """StandaloneServerPool with RefreshMethod sentinel: the Sentinels name the nodes."""
    def text(port):
        return ('Bind = %s:%d\n[StandaloneServerPool]\nRefreshMethod = sentinel\nSentinels = %s\n'
                '[[shard001]]\n[[shard002]]\n' % (HOST, port, ', '.join(ds.sentinels)))
    p = start_proxy(None, text=text)
    try:
        r = redis.Redis(port=p.port)
        place = Placement('crc16', '', 'modula', 2)
        for i in range(10):
            r.set('sa:%d' % i, i)
        ms = masters(ds)
        for i in range(10):
            assert node(ds, ms[place.group_of(b'sa:%d' % i)]).get('sa:%d' % i) == b'%d' % i
    finally:
        p.stop()
