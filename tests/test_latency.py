"""[LatencyMonitor]: named histograms over chosen commands, whole-proxy and per
node, printed by INFO, INFO Latency <name>, INFO ServerLatency <addr> [name];
CONFIG RESETSTAT zeroes them."""

import re

import pytest

from clusterhelp import keys_per_master
from conftest import HOST, replies, start_proxy
from geproxy.resp import command
from opshelp import bulk_text, call, info

CONF = """\
[LatencyMonitor]
[[all]]
Commands = all, -blpop
TimeSpan = 100, 200, 500, 1000
[[get]]
Commands = get
[[noset]]
Commands = all, -set
"""
DEFAULT_SPANS = [100, 200, 500, 1000, 2000, 5000, 10000, 50000]
ROW = re.compile(r'^(<=|>)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+\.\d\d)%$')
TOTAL = re.compile(r'^T\s+(\d+)\s+(\d+)\s+(\d+)$')


@pytest.fixture(scope='module')
def p(cluster):
    px = start_proxy(cluster, extra_conf=CONF)
    yield px
    px.stop()


def histograms(text):
    """{title: (rows, total)} for each `LatencyMonitorName:` / `ServerLatencyMonitorName:`
    block; rows are (op, bound, sum, count, pct), total is (avg, sum, count) or None."""
    out, cur = {}, None
    for line in text.splitlines():
        if 'LatencyMonitorName:' in line:
            cur = line.split(':', 1)[1]
            out[cur] = ([], None)
        elif cur is not None and ROW.match(line):
            op, bound, s, n, pct = ROW.match(line).groups()
            out[cur][0].append((op, int(bound), int(s), int(n), float(pct)))
        elif cur is not None and TOTAL.match(line):
            out[cur] = (out[cur][0], tuple(map(int, TOTAL.match(line).groups())))
        elif cur is not None and line.strip():
            raise AssertionError('unexpected line in %s: %r' % (cur, line))
    return out


def check_shape(rows, total, spans):
    """Rows are consistent with the total and the configured bounds."""
    assert total is not None, rows
    avg, tsum, count = total
    assert sum(r[3] for r in rows) == count and sum(r[2] for r in rows) == tsum
    assert avg == tsum // count
    assert [r[4] for r in rows] == sorted(r[4] for r in rows) and rows[-1][4] == 100.0
    for op, bound, s, n, _ in rows:
        assert n > 0
        if op == '<=':
            assert bound in spans and s <= n * bound
        else:
            assert bound == spans[-1] and s > n * bound


def traffic(port, keys):
    """30 SET, 20 GET, 5 INCR, 1 BLPOP (0.1s timeout), 3 PING; returns per-command counts by key."""
    from conftest import RawClient
    c = RawClient(port)
    try:
        data = b''
        for i in range(30):
            data += command('SET', keys[i % len(keys)], 'v')
        for i in range(20):
            data += command('GET', keys[i % len(keys)])
        for i in range(5):
            data += command('INCR', 'lat:counter:%d' % i)
        data += command('PING') * 3
        c.send(data)
        c.recv_until(replies(58))
        c.send(command('BLPOP', 'lat:nolist', '0.1'))
        c.recv_until(replies(1))
    finally:
        c.close()


def test_histograms_count_measured_commands(p, cluster):
    call(p.port, 'CONFIG', 'RESETSTAT')
    per = keys_per_master(cluster, 'lat', 2)
    keys = [k for ks in per.values() for k in ks]
    traffic(p.port, keys)
    text = info(p.port, 'LatencyMonitor')
    assert text.startswith('# LatencyMonitor\r\n')
    h = histograms(text)
    assert list(h) == ['all', 'get', 'noset']
    rows, total = h['all']
    check_shape(rows, total, [100, 200, 500, 1000])
    assert total[2] == 55             # SET, GET, INCR; not PING (local), not BLPOP (excluded)
    rows, total = h['get']
    check_shape(rows, total, DEFAULT_SPANS)
    assert total[2] == 20
    rows, total = h['noset']
    check_shape(rows, total, DEFAULT_SPANS)
    assert total[2] == 25             # GET + INCR; SET excluded
    # the full INFO carries the same section
    assert histograms(section_of(info(p.port), 'LatencyMonitor')) == h


def section_of(text, title):
    return text.split('# %s\r\n' % title, 1)[1].split('\r\n# ', 1)[0]


def test_info_latency_name_and_per_server(p, cluster):
    call(p.port, 'CONFIG', 'RESETSTAT')
    per = keys_per_master(cluster, 'latg', 1)
    expected = {}
    for port, (key,) in per.items():
        n = 2 + port % 3               # a different count per master
        for _ in range(n):
            assert call(p.port, 'GET', key) == b'$-1\r\n'
        expected['%s:%d' % (HOST, port)] = n
    text = info(p.port, 'Latency', 'get')
    assert text.startswith('# LatencyMonitor\r\nLatencyMonitorName:get\r\n')
    h = histograms(text)
    assert h['get'][1][2] == sum(expected.values())
    per_server = {k.split()[0]: v for k, v in h.items() if k != 'get'}
    assert set(h) - {'get'} == {'%s get' % a for a in expected}
    assert {a: v[1][2] for a, v in per_server.items()} == expected
    for rows, total in per_server.values():
        check_shape(rows, total, DEFAULT_SPANS)

    addr, n = sorted(expected.items())[0]
    text = info(p.port, 'ServerLatency', addr, 'get')
    assert text.startswith('# ServerLatencyMonitor\r\nServerLatencyMonitorName:%s get\r\n' % addr)
    only = histograms(text)
    assert list(only) == ['%s get' % addr] and only['%s get' % addr][1][2] == n
    text = info(p.port, 'ServerLatency', addr)
    both = histograms(text)
    assert list(both) == ['%s all' % addr, '%s get' % addr, '%s noset' % addr]
    assert both['%s all' % addr][1][2] == n


def test_slow_command_lands_above_the_last_bound(p):
    call(p.port, 'CONFIG', 'RESETSTAT')
    spin = ("local t = redis.call('TIME'); local s = t[1] * 1000000 + t[2]; "
            "repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] - s > 3000; return 1")
    assert call(p.port, 'EVAL', spin, '0') == b':1\r\n'
    rows, total = histograms(info(p.port, 'Latency', 'all'))['all']
    assert total[2] == 1
    assert rows == [('>', 1000, total[1], 1, 100.0)] and total[1] >= 3000


def test_resetstat_zeroes_histograms(p):
    assert call(p.port, 'GET', 'lat:x') == b'$-1\r\n'
    assert histograms(info(p.port, 'Latency', 'get'))['get'][1] is not None
    assert call(p.port, 'CONFIG', 'RESETSTAT') == b'+OK\r\n'
    h = histograms(info(p.port, 'LatencyMonitor'))
    assert h == {'all': ([], None), 'get': ([], None), 'noset': ([], None)}
    for k, (rows, total) in histograms(info(p.port, 'Latency', 'get')).items():
        assert rows == [] and total is None, k
    assert call(p.port, 'GET', 'lat:x') == b'$-1\r\n'
    assert histograms(info(p.port, 'LatencyMonitor'))['get'][1][2] == 1


def test_redirected_command_is_counted_once(cluster, make_proxy):
    """A GET that meets MOVED and is followed to the new owner is one measured command."""
    from test_cluster_changes import key_on, move_slot
    from geproxy.slots import key_slot
    src, dst = cluster.masters()[:2]
    px = make_proxy(pool={'RefreshInterval': 60}, extra_conf=CONF)   # the map stays stale
    key = key_on(cluster, src, 'latmoved')
    slot = key_slot(key.encode())
    move_slot(cluster, slot, src, dst)
    try:
        assert call(px.port, 'GET', key) == b'$-1\r\n'
        h = histograms(info(px.port, 'Latency', 'get'))
    finally:
        move_slot(cluster, slot, dst, src)
        cluster.wait_ok()
    assert h['get'][1] is not None and h['get'][1][2] == 1, h
    assert histograms(info(px.port, 'LatencyMonitor'))['all'][1][2] == 1


def test_unknown_monitor_is_an_error(p):
    reply = call(p.port, 'INFO', 'Latency', 'nosuch')
    assert reply.startswith(b'-ERR') and b'nosuch' in reply, reply


def test_no_monitors_configured(proxy):
    text = bulk_text(call(proxy.port, 'INFO', 'LatencyMonitor'))
    assert text.strip() == '# LatencyMonitor'
