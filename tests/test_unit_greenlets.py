"""greenlets.alive(): the live count INFO shows, kept by the spawns themselves."""

import gevent
import gevent.event

from geproxy import greenlets


def test_alive_counts_started_and_ended():
    base = greenlets.alive()
    ev = gevent.event.Event()
    gs = [greenlets.spawn(ev.wait) for _ in range(5)] + [greenlets.spawn_later(30, lambda: None)]
    gevent.sleep(0)
    assert greenlets.alive() == base + 6
    ev.set()
    gevent.joinall(gs[:5], timeout=5)
    gevent.sleep(0)
    assert greenlets.alive() == base + 1          # the pending spawn_later is still alive
    gs[-1].kill()
    gevent.sleep(0)
    assert greenlets.alive() == base
    boom = greenlets.spawn(lambda: 1 / 0)         # one that dies of an error ends too
    gevent.joinall([boom], timeout=5)
    gevent.sleep(0)
    assert greenlets.alive() == base
