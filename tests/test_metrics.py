"""MetricsBind: Prometheus text at /metrics, per-server series, latency
histograms; with workers, the sum over all workers' snapshots."""

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from conftest import HOST, RawClient, free_port, replies
from geproxy.resp import command
from opshelp import call, settled, wait_for

LATENCY = """\
[LatencyMonitor]
[[all]]
Commands = all
TimeSpan = 100, 1000, 10000
[[get]]
Commands = get
"""


def scrape(port):
    """(content type, {name: [(labels, value)]}) of one /metrics scrape."""
    with urllib.request.urlopen('http://%s:%d/metrics' % (HOST, port), timeout=5) as resp:
        ctype, text = resp.headers.get('Content-Type'), resp.read().decode()
    samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            samples.setdefault(s.name, []).append((s.labels, s.value))
    return ctype, samples


def value(samples, name, **labels):
    vals = [v for l, v in samples.get(name, []) if all(l.get(k) == v2 for k, v2 in labels.items())]
    assert len(vals) == 1, (name, labels, samples.get(name))
    return vals[0]


def traffic(port, n_set, n_get):
    c = RawClient(port)
    try:
        c.send(b''.join(command('SET', 'met:%d' % i, 'v') for i in range(n_set))
               + b''.join(command('GET', 'met:%d' % i) for i in range(n_get)))
        c.recv_until(replies(n_set + n_get))
    finally:
        c.close()


def test_metrics_single_process(make_proxy, cluster):
    mport = free_port()
    p = make_proxy(top={'MetricsBind': '%s:%d' % (HOST, mport)}, extra_conf=LATENCY)
    traffic(p.port, 10, 5)
    assert call(p.port, 'GET', 'met:x', 'extra') .startswith(b'-ERR')   # an error reply
    ctype, m = scrape(mport)
    assert ctype.startswith('text/plain')
    assert value(m, 'geproxy_requests_total') >= 16
    assert value(m, 'geproxy_responses_total') >= 16
    assert value(m, 'geproxy_errors_total') >= 1
    assert value(m, 'geproxy_accepted_total') >= 2
    assert value(m, 'geproxy_recv_client_bytes_total') > 0
    assert value(m, 'geproxy_send_client_bytes_total') > 0
    assert value(m, 'geproxy_client_connections') >= 0
    servers = {l['server']: (l['role'], v) for l, v in m['geproxy_server_requests_total']}
    assert set(servers) == set(cluster.addrs)
    assert sorted(r for r, _ in servers.values()) == ['master'] * 3 + ['slave'] * 3
    assert sum(v for _, v in servers.values()) >= 15
    for name in ('geproxy_server_failed', 'geproxy_server_connections', 'geproxy_server_responses_total',
                 'geproxy_server_send_bytes_total', 'geproxy_server_recv_bytes_total'):
        assert {l['server'] for l, _ in m[name]} == set(cluster.addrs), name
    assert all(v == 0 for _, v in m['geproxy_server_failed'])
    # latency histograms: cumulative buckets ending in +Inf, count and sum
    buckets = {l['le']: v for l, v in m['geproxy_latency_all_microseconds_bucket']}
    assert list(buckets) == ['100.0', '1000.0', '10000.0', '+Inf'] or \
        list(buckets) == ['100', '1000', '10000', '+Inf'], buckets
    counts = list(buckets.values())
    assert counts == sorted(counts) and counts[-1] == 15
    assert value(m, 'geproxy_latency_all_microseconds_count') == 15
    assert value(m, 'geproxy_latency_all_microseconds_sum') > 0
    assert value(m, 'geproxy_latency_get_microseconds_count') == 5
    gb = {l['le']: v for l, v in m['geproxy_latency_get_microseconds_bucket']}
    assert len(gb) == 9 and gb['+Inf'] == 5
    # live: a second scrape sees new traffic
    traffic(p.port, 3, 0)
    assert value(scrape(mport)[1], 'geproxy_latency_all_microseconds_count') == 18


def test_metrics_summed_over_workers(make_proxy):
    mport = free_port()
    p = make_proxy(top={'MetricsBind': '%s:%d' % (HOST, mport), 'WorkerProcesses': 2},
                   extra_conf=LATENCY)
    assert settled(p.port)
    n = 40
    for i in range(n):                       # fresh connections: both workers take some
        assert call(p.port, 'SET', 'metw:%d' % i, 'v') == b'+OK\r\n'

    def summed():
        m = scrape(mport)[1]
        return m if value(m, 'geproxy_latency_all_microseconds_count') >= n else None
    m = wait_for(summed, timeout=4, step=0.25)
    assert m, scrape(mport)[1].get('geproxy_latency_all_microseconds_count')
    assert value(m, 'geproxy_latency_all_microseconds_count') == n   # only SETs are measured
    assert value(m, 'geproxy_requests_total') >= n
    assert value(m, 'geproxy_accepted_total') >= n
    assert sum(v for l, v in m['geproxy_server_requests_total'] if l['role'] == 'master') >= n
    assert len(m['geproxy_server_requests_total']) == 6          # one series per node, not per worker
