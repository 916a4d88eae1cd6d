"""Small helpers for the operations tests (INFO, CONFIG, Authority, latency,
limits, logs, workers, metrics): one-shot commands over a raw socket, INFO
parsing, polling, and the pids of a proxy's worker processes."""

import os
import time

from conftest import RawClient, replies
from geproxy.resp import command
from conftest import wait_for  # noqa: F401 (re-exported for the tests)


def call(port, *args, timeout=5.0):
    """Send one command on a fresh connection; the raw reply bytes."""
    c = RawClient(port, timeout)
    try:
        return ask(c, *args, timeout=timeout)
    finally:
        c.close()


def ask(client, *args, timeout=5.0):
    """Send one command on an open RawClient; the raw reply bytes."""
    client.send(command(*args))
    return client.recv_until(replies(1), timeout)


def bulk_text(reply):
    """The text of a bulk ($) or verbatim (=) reply."""
    assert reply[:1] in (b'$', b'='), reply[:200]
    body = reply[reply.index(b'\r\n') + 2:-2]
    if reply[:1] == b'=':
        body = body[4:]
    return body.decode()


def info(port, *sections):
    return bulk_text(call(port, 'INFO', *sections))


def fields(text):
    """key -> value for each `key:value` line (the first occurrence wins)."""
    out = {}
    for line in text.splitlines():
        if ':' in line and not line.startswith('#'):
            k, v = line.split(':', 1)
            out.setdefault(k, v)
    return out


def section(text, title):
    """The lines of one `# Title` section of INFO."""
    out, inside = [], False
    for line in text.splitlines():
        if line.startswith('# '):
            inside = line[2:].strip() == title
            continue
        if inside:
            out.append(line)
    return '\n'.join(out)


def server_blocks(text):
    """The `# Servers` section as a list of dicts, one per node."""
    blocks, cur = [], None
    for line in section(text, 'Servers').splitlines():
        if line.startswith('Server:'):
            cur = {}
            blocks.append(cur)
        if cur is not None and ':' in line:
            k, v = line.split(':', 1)
            cur[k] = v
    return blocks


def config_get(port, pattern):
    """CONFIG GET as a dict name -> value (RESP2 flat array of bulks)."""
    reply = call(port, 'CONFIG', 'GET', pattern)
    assert reply[:1] == b'*', reply
    items, pos = [], reply.index(b'\r\n') + 2
    while pos < len(reply):
        eol = reply.index(b'\r\n', pos)
        n = int(reply[pos + 1:eol])
        items.append(reply[eol + 2:eol + 2 + n].decode())
        pos = eol + 4 + n
    return dict(zip(items[::2], items[1::2]))


def settled(port, n=20):
    """n fresh connections in a row answer PING with +PONG: with workers, every
    worker has learned the cluster (start_proxy only waits for the first)."""
    return wait_for(lambda: all(answers(port) == b'+PONG\r\n' for _ in range(n)), timeout=5)


def children(pid):
    """Pids of the live (not zombie) child processes of pid."""
    import psutil
    try:
        return sorted(c.pid for c in psutil.Process(pid).children()
                      if c.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return []


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    import psutil
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def answers(port, timeout=1.0):
    """The reply bytes to PING on a fresh connection, or None (not listening yet)."""
    try:
        c = RawClient(port, timeout)
    except OSError:
        return None
    try:
        return ask(c, 'PING', timeout=timeout)
    except (OSError, TimeoutError, ConnectionError):
        return None
    finally:
        c.close()


def spawn(conf_path, port, ready=None, timeout=10, extra_args=()):
    """Start `python -m geproxy -c conf_path` (for configs conftest.start_proxy cannot
    write, or proxies that do not answer PING with +PONG); wait until
    ready(PING reply) (default: any reply).  Returns a conftest.Proxy whose tmpdir
    is the config's folder (removed by stop())."""
    import subprocess
    import sys
    from conftest import ROOT, Proxy
    tmpdir = os.path.dirname(conf_path)
    log_path = os.path.join(tmpdir, 'proxy.out')
    env = dict(os.environ, PYTHONUNBUFFERED='1',
               PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get('PYTHONPATH')])))
    with open(log_path, 'ab') as log:
        proc = subprocess.Popen([sys.executable, '-m', 'geproxy', '-c', conf_path] + list(extra_args),
                                cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    p = Proxy(port, proc, log_path, conf_path, tmpdir)
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        reply = answers(port, 0.5)
        if reply is not None and (ready is None or ready(reply)):
            return p
        time.sleep(0.05)
    out = p.log_tail()
    p.stop()
    raise RuntimeError('geproxy did not come up (rc %s):\n%s' % (proc.returncode, out))
