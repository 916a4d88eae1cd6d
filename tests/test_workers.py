"""WorkerProcesses > 1: an arbiter with N workers on one port; restart of a dead
worker, SIGTERM (graceful: replies in flight are delivered), SIGHUP (logs reopen,
workers live on)."""

import os
import signal
import time

import pytest

from conftest import RawClient, replies
from geproxy.resp import command
from opshelp import alive, ask, bulk_text as bulk, call, children, fields, info, settled, wait_for

SPIN = ("local t = redis.call('TIME'); local s = t[1] * 1000000 + t[2]; "
        "repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] - s > %d; return 'done'")


def worker_ids(port, n=40):
    return {fields(info(port, 'proxy'))['WorkerId'] for _ in range(n)}


def test_both_workers_serve(make_proxy):
    p = make_proxy(top={'WorkerProcesses': 2})
    assert wait_for(lambda: len(children(p.pid)) == 2), children(p.pid)
    assert settled(p.port)
    f = fields(info(p.port, 'proxy'))
    assert f['WorkerThreads'] == '2' and f['StatsScope'] == 'this worker'
    assert wait_for(lambda: worker_ids(p.port) == {'0', '1'}, timeout=5), worker_ids(p.port)
    for i in range(20):
        assert call(p.port, 'SET', 'wk:%d' % i, str(i)) == b'+OK\r\n'
        assert call(p.port, 'GET', 'wk:%d' % i) == b'$%d\r\n%d\r\n' % (len(str(i)), i)


def test_killed_worker_is_restarted(make_proxy):
    p = make_proxy(top={'WorkerProcesses': 2})
    assert wait_for(lambda: len(children(p.pid)) == 2)
    assert settled(p.port)
    before = children(p.pid)
    os.kill(before[0], signal.SIGKILL)
    # Fresh connections all along: the surviving worker, then the restarted one too, must answer.
    # (A connection still queued on the killed worker's own SO_REUSEPORT socket is reset by the
    # kernel; at most a couple of those are tolerated, right after the kill.)
    results, t = [], time.time()
    while time.time() - t < 1.5:
        try:
            results.append(call(p.port, 'GET', 'wk:restart'))
        except ConnectionResetError:
            results.append('reset')
    assert results.count('reset') <= 2, results.count('reset')
    wrong = [r for r in results if r not in (b'$-1\r\n', 'reset')]
    assert not wrong, '%d of %d replies were errors, e.g. %r' % (len(wrong), len(results), wrong[0])
    now = wait_for(lambda: len(children(p.pid)) == 2 and children(p.pid), timeout=5)
    assert now and before[0] not in now and before[1] in now, (before, now)
    assert wait_for(lambda: 'restarting' in p.log(), timeout=2), p.log_tail()
    assert wait_for(lambda: worker_ids(p.port) == {'0', '1'}, timeout=5)
    assert p.proc.poll() is None


def test_sigterm_stops_everything(make_proxy):
    p = make_proxy(top={'WorkerProcesses': 2})
    pids = wait_for(lambda: len(children(p.pid)) == 2 and children(p.pid))
    c = RawClient(p.port)
    assert ask(c, 'PING') == b'+PONG\r\n'
    t = time.time()
    os.kill(p.pid, signal.SIGTERM)
    assert p.proc.wait(5) == 0
    assert time.time() - t < 4
    assert not any(alive(pid) for pid in pids)
    with pytest.raises(OSError):
        RawClient(p.port, timeout=1)
    c.close()


def test_sighup_keeps_workers_and_reopens_their_logs(make_proxy, tmp_path):
    log = tmp_path / 'g.log'
    p = make_proxy(top={'WorkerProcesses': 2, 'Log': str(log)})
    pids = wait_for(lambda: len(children(p.pid)) == 2 and children(p.pid))
    assert settled(p.port)
    time.sleep(0.2)                               # workers have their SIGHUP handlers
    os.rename(log, tmp_path / 'g.log.old')
    os.kill(p.pid, signal.SIGHUP)
    assert wait_for(log.exists, timeout=3), 'no worker reopened the log'
    time.sleep(0.3)
    assert children(p.pid) == pids and p.proc.poll() is None
    for _ in range(10):
        c = RawClient(p.port)
        c.send(b'*1\r\nX\r\n')
        c.recv_until(replies(1))
        c.close()
    assert wait_for(lambda: log.read_text().count('protocol error') == 10)
    assert 'protocol error' not in (tmp_path / 'g.log.old').read_text()


def test_sighup_reopens_the_arbiters_log_too(make_proxy, tmp_path):
    log = tmp_path / 'g.log'
    p = make_proxy(top={'WorkerProcesses': 2, 'Log': str(log)})
    pids = wait_for(lambda: len(children(p.pid)) == 2 and children(p.pid))
    assert settled(p.port)
    time.sleep(0.2)
    os.rename(log, tmp_path / 'g.log.old')
    os.kill(p.pid, signal.SIGHUP)
    assert wait_for(log.exists, timeout=3)
    os.kill(pids[0], signal.SIGKILL)              # the arbiter logs the restart
    assert wait_for(lambda: len(children(p.pid)) == 2, timeout=5)
    time.sleep(0.2)
    assert 'restarting' in log.read_text(), 'arbiter still writes to the renamed file: %r' % (
        (tmp_path / 'g.log.old').read_text()[-300:])


@pytest.mark.parametrize('workers', [1, 2])
def test_sigterm_delivers_replies_in_flight(make_proxy, workers):
    p = make_proxy(top={'WorkerProcesses': workers})
    assert settled(p.port)
    slow = RawClient(p.port)
    slow.send(command('EVAL', SPIN % 600000, '0'))   # 0.6s on a shared node link
    time.sleep(0.2)
    os.kill(p.pid, signal.SIGTERM)
    assert slow.recv_until(replies(1), timeout=5) == b'$4\r\ndone\r\n'
    assert p.proc.wait(5) == 0
    slow.close()


@pytest.mark.parametrize('workers', [1, 2])
def test_sigterm_delivers_blocking_reply_in_flight(make_proxy, workers):
    """A BLPOP (private connection) waiting when SIGTERM arrives still gets its nil reply."""
    p = make_proxy(top={'WorkerProcesses': workers})
    assert settled(p.port)
    c = RawClient(p.port)
    c.send(command('BLPOP', 'wk:nolist', '1'))
    time.sleep(0.3)
    os.kill(p.pid, signal.SIGTERM)
    try:
        got = c.recv_until(replies(1), timeout=5)
    except ConnectionError as e:
        got = 'closed: %s' % e
    finally:
        c.close()
    assert p.proc.wait(5) == 0
    assert got == b'*-1\r\n', got


def test_config_set_reaches_every_worker(make_proxy):
    """CONFIG SET changes the proxy's setting, whichever worker took the connection."""
    p = make_proxy(top={'WorkerProcesses': 2})
    assert settled(p.port)
    assert wait_for(lambda: worker_ids(p.port) == {'0', '1'}, timeout=5)
    assert call(p.port, 'CONFIG', 'SET', 'ClientTimeout', '7') == b'+OK\r\n'
    time.sleep(0.3)  # the other worker hears of it through the arbiter (a signal): not instantly
    seen = set()
    for _ in range(40):
        c = RawClient(p.port)
        wid = fields(bulk(ask(c, 'INFO', 'proxy')))['WorkerId']
        seen.add((wid, ask(c, 'CONFIG', 'GET', 'clienttimeout').split(b'\r\n')[-2].decode()))
        c.close()
    assert {w for w, _ in seen} == {'0', '1'}
    assert seen == {('0', '7'), ('1', '7')}, sorted(seen)


def test_config_set_survives_a_worker_restart(make_proxy):
    """A worker restarted by the arbiter starts with every CONFIG SET made so far,
    whichever worker took each."""
    p = make_proxy(top={'WorkerProcesses': 2})
    assert settled(p.port)
    assert wait_for(lambda: worker_ids(p.port) == {'0', '1'}, timeout=5)
    assert call(p.port, 'CONFIG', 'SET', 'ClientTimeout', '9') == b'+OK\r\n'
    assert call(p.port, 'CONFIG', 'SET', 'ClientOutputLimit', '32M') == b'+OK\r\n'
    time.sleep(0.3)
    before = children(p.pid)
    for pid in before:
        os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: len(children(p.pid)) == 2 and not set(children(p.pid)) & set(before), timeout=10)
    assert settled(p.port)
    seen = set()
    for _ in range(40):
        c = RawClient(p.port)
        wid = fields(bulk(ask(c, 'INFO', 'proxy')))['WorkerId']
        got = (ask(c, 'CONFIG', 'GET', 'ClientTimeout').split(b'\r\n')[-2],
               ask(c, 'CONFIG', 'GET', 'ClientOutputLimit').split(b'\r\n')[-2])
        seen.add((wid,) + got)
        c.close()
    assert {w for w, *_ in seen} <= {'0', '1'}
    assert {tuple(g) for _, *g in seen} == {(b'9', b'33554432')}, sorted(seen)


def test_sigterm_during_restart_backoff_leaves_no_worker(make_proxy):
    """A worker that keeps dying is restarted after a back-off; SIGTERM in that
    back-off stops the arbiter and every worker, and none is started after."""
    p = make_proxy(top={'WorkerProcesses': 2})
    assert wait_for(lambda: len(children(p.pid)) == 2)
    first = children(p.pid)[0]
    os.kill(first, signal.SIGKILL)
    assert wait_for(lambda: len(children(p.pid)) == 2 and first not in children(p.pid), timeout=5)
    again = [c for c in children(p.pid)][0]
    os.kill(again, signal.SIGKILL)           # dies again at once: its restart waits a back-off
    time.sleep(0.2)
    left = children(p.pid)
    os.kill(p.pid, signal.SIGTERM)
    p.proc.wait(40)
    time.sleep(1.5)                           # past the back-off: nothing may have started
    assert not [pid for pid in left if alive(pid)], left
    assert "Traceback" not in p.log(), p.log_tail()
