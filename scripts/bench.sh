#!/usr/bin/env bash
# Throughput and latency of redis-benchmark straight at a local cluster vs through geproxy (1 and 2 worker
# processes) and predixy when given, as medians and ratios, plus RSS with 1,000 idle clients; then TLS rows
# (a TLS-only cluster: direct --tls --cluster, geproxy with TLS on both sides, plain geproxy; --no-tls skips).
# Env: N=200000 requests per run (multi-key: N/4), ROUNDS=3, GEPROXY_BENCH_PORTS (cluster ports;
# default free), PREDIXY=/path/to/predixy to compare with predixy, TESTS=set,get,mget,mset,del.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/_install.sh
geproxy_install
exec .venv/bin/python scripts/bench.py "$@"
