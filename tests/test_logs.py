"""Logging: Log file, LogRotate by size, per-level sampling (file and CONFIG SET),
SIGHUP reopening the file for an external logrotate.

Info lines are made cheaply with protocol errors: each bad connection logs one
`client ...: protocol error: ...` line at info level."""

import os
import re
import signal

from conftest import RawClient, replies
from opshelp import call, wait_for

LINE = re.compile(r'^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (\d+) (INFO|WARNING|ERROR|NOTICE|DEBUG|VERB) [\w.]+: ')
ROTATED = re.compile(r'^g\.log\.\d{8}-\d{6}(\.\d+)?$')


def protocol_errors(port, n):
    for _ in range(n):
        c = RawClient(port)
        try:
            c.send(b'*1\r\nX\r\n')
            assert c.recv_until(replies(1)).startswith(b'-ERR Protocol error')
            c.wait_closed(2)
        finally:
            c.close()


def read(path):
    with open(path, errors='replace') as f:
        return f.read()


def test_log_file_gets_lines(make_proxy, tmp_path):
    log = tmp_path / 'sub' / 'g.log'              # a missing folder is created
    p = make_proxy(top={'Log': str(log)})
    assert wait_for(lambda: log.exists() and 'listening on' in read(log))
    protocol_errors(p.port, 2)
    text = read(log)
    lines = text.splitlines()
    assert all(LINE.match(l) for l in lines), lines
    assert any(LINE.match(l).group(1) == str(p.pid) for l in lines)
    assert text.count('protocol error') == 2
    assert 'listening on' not in p.log()          # stdout is quiet when Log is set


def test_rotate_by_size(make_proxy, tmp_path):
    log = tmp_path / 'g.log'
    filler = ('#' * 1023 + '\n') * 1008            # 1 MiB less 16 KiB already there
    log.write_text(filler)
    p = make_proxy(top={'Log': str(log), 'LogRotate': '1M'})
    assert not [f for f in os.listdir(tmp_path) if ROTATED.match(f)]
    assert read(log).startswith(filler)            # appended to, not truncated
    protocol_errors(p.port, 250)                   # ~25 KiB of info lines
    rotated = [f for f in os.listdir(tmp_path) if ROTATED.match(f)]
    assert len(rotated) == 1, os.listdir(tmp_path)
    old = read(tmp_path / rotated[0])
    assert old.startswith(filler) and len(old) >= 1 << 20
    assert len(old) < (1 << 20) + 1024             # rotated as soon as it passed 1 MiB
    new = read(log)
    assert '#' not in new and new.count('protocol error') >= 50
    assert old.count('protocol error') + new.count('protocol error') == 250
    assert call(p.port, 'CONFIG', 'GET', 'LogRotate') == b'*2\r\n$9\r\nLogRotate\r\n$2\r\n1M\r\n'


def test_sampling(make_proxy, tmp_path):
    log = tmp_path / 'g.log'
    p = make_proxy(top={'Log': str(log), 'LogInfoSample': 0})
    protocol_errors(p.port, 5)
    # a warning: going over MaxMemory
    assert call(p.port, 'CONFIG', 'SET', 'MaxMemory', '1M') == b'+OK\r\n'
    assert call(p.port, 'CONFIG', 'SET', 'MaxMemory', '0') == b'+OK\r\n'
    assert wait_for(lambda: 'back under MaxMemory' in read(log))
    text = read(log)
    assert ' INFO ' not in text, text
    assert 'WARNING geproxy: memory over MaxMemory' in text
    # online: every info line, then every third
    assert call(p.port, 'CONFIG', 'SET', 'LogInfoSample', '1') == b'+OK\r\n'
    protocol_errors(p.port, 4)
    assert read(log).count('protocol error') == 4
    assert call(p.port, 'CONFIG', 'SET', 'LogInfoSample', '3') == b'+OK\r\n'
    protocol_errors(p.port, 30)
    assert 4 + 9 <= read(log).count('protocol error') <= 4 + 11
    assert call(p.port, 'CONFIG', 'SET', 'LogWarnSample', '0') == b'+OK\r\n'
    assert call(p.port, 'CONFIG', 'SET', 'MaxMemory', '1M') == b'+OK\r\n'
    assert call(p.port, 'CONFIG', 'SET', 'MaxMemory', '0') == b'+OK\r\n'
    assert read(log).count('memory over MaxMemory') == 1


def test_sighup_reopens_the_log(make_proxy, tmp_path):
    log = tmp_path / 'g.log'
    p = make_proxy(top={'Log': str(log)})
    protocol_errors(p.port, 1)
    moved = tmp_path / 'g.log.1'
    os.rename(log, moved)
    protocol_errors(p.port, 1)                     # still written to the renamed file
    assert read(moved).count('protocol error') == 2 and not log.exists()
    os.kill(p.pid, signal.SIGHUP)
    assert wait_for(log.exists, timeout=3), 'SIGHUP did not reopen %s' % log
    protocol_errors(p.port, 3)
    assert p.proc.poll() is None
    assert read(log).count('protocol error') == 3
    assert read(moved).count('protocol error') == 2
    assert call(p.port, 'PING') == b'+PONG\r\n'


def test_sighup_with_stdout_logging_keeps_running(make_proxy):
    p = make_proxy()
    os.kill(p.pid, signal.SIGHUP)
    protocol_errors(p.port, 1)
    assert p.proc.poll() is None and call(p.port, 'PING') == b'+PONG\r\n'
    assert 'protocol error' in p.log()
