"""Command line: `geproxy -c etc/proxy.conf`."""

import argparse
import logging
import signal
import sys

from . import __version__, logs
from .config import ConfigError, load
from .listener import ListenError
from .tls import TLSSettingError

log = logging.getLogger("geproxy")


def parse_args(argv):
    p = argparse.ArgumentParser(prog="geproxy", description="A Redis Cluster proxy: one endpoint for a whole cluster.")
    p.add_argument("-c", "--config", required=True, help="configuration file (e.g. etc/proxy.conf)")
    p.add_argument("-t", "--test", action="store_true", help="check the configuration and exit")
    p.add_argument("--version", action="version", version="geproxy %s" % __version__)
    p.add_argument("--bind", help="override Bind")
    p.add_argument("--name", help="override Name")
    p.add_argument("--workers", help="override WorkerProcesses")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    overrides = {k: v for k, v in (("Bind", args.bind), ("Name", args.name), ("WorkerProcesses", args.workers))
                 if v is not None}
    try:
        cfg = load(args.config, overrides)
    except ConfigError as e:
        print("geproxy: configuration error: %s" % e, file=sys.stderr)
        sys.exit(2)
    if args.test:
        print("geproxy: configuration %s is ok" % cfg.path)
        return
    handler = logs.setup(cfg)
    try:
        if cfg.WorkerProcesses > 1:
            from .arbiter import Arbiter
            code = Arbiter(cfg, run_worker, handler).run()
        else:
            code = run_worker(cfg)
    except ListenError as e:
        print("geproxy: %s" % e, file=sys.stderr)
        sys.exit(1)
    except TLSSettingError as e:   # a TLS file changed between the check and the start
        print("geproxy: configuration error: %s" % e, file=sys.stderr)
        sys.exit(2)
    sys.exit(code)


def run_worker(cfg, listeners=None, worker_id=None, rundir=None):
    """One gevent proxy until SIGTERM/SIGINT; SIGHUP reopens the log file and
    reads the TLS listener's certificate, key and CA again; SIGUSR1 (from the
    arbiter) takes a CONFIG SET made in another worker."""
    import gevent
    import gevent.event

    from . import greenlets, metrics
    from .proxy import Proxy

    handler = logs.setup(cfg)
    proxy = Proxy(cfg, worker_id, rundir)
    stop = gevent.event.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(sig, stop.set)
    gevent.signal_handler(signal.SIGHUP, _hangup, handler, proxy)
    gevent.signal_handler(signal.SIGUSR1, proxy.apply_shared_config)
    proxy.start(listeners)
    if cfg.MetricsBind:
        if worker_id is None:
            metrics.start_for_proxy(proxy)
        else:
            greenlets.spawn(metrics.write_snapshots, proxy, rundir, worker_id)
    stop.wait()
    log.info("shutting down")
    proxy.stop()
    return 0


def _hangup(handler, proxy) -> None:
    """SIGHUP: logrotate moved the log file; a renewed certificate is in place."""
    logs.reopen(handler)
    proxy.reload_tls()
