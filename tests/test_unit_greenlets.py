"""greenlets.alive(): the live count INFO shows, kept by the spawns themselves.
Run in a fresh interpreter: greenlets left by other tests in this process
would end (and count) while this one watches."""

import subprocess
import sys

SCRIPT = r'''
import gevent, gevent.event
from geproxy import greenlets
base = greenlets.alive()
ev = gevent.event.Event()
gs = [greenlets.spawn(ev.wait) for _ in range(5)] + [greenlets.spawn_later(30, lambda: None)]
gevent.sleep(0)
seen = [greenlets.alive() - base]
ev.set()
gevent.joinall(gs[:5], timeout=5)
gevent.sleep(0)
seen.append(greenlets.alive() - base)      # the pending spawn_later is still alive
gs[-1].kill()
gevent.sleep(0)
seen.append(greenlets.alive() - base)
boom = greenlets.spawn(lambda: 1 / 0)      # one that dies of an error ends too
gevent.joinall([boom], timeout=5)
gevent.sleep(0)
seen.append(greenlets.alive() - base)
print(seen)
'''


def test_alive_counts_started_and_ended():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[6, 1, 0, 0]", out.stdout + out.stderr[-500:]
