#!/usr/bin/env bash
# Throughput of redis-benchmark straight at a local cluster vs through geproxy (medians).
# Env: N=200000 requests per run, ROUNDS=3, GEPROXY_BENCH_PORTS=7100-7105 (cluster),
#      GEPROXY_BENCH_PROXY_PORT=7717, BENCH_TIMEOUT=600 seconds per redis-benchmark run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/_install.sh
geproxy_install

PORTS="${GEPROXY_BENCH_PORTS:-7100-7105}"
PPORT="${GEPROXY_BENCH_PROXY_PORT:-7717}"
N="${N:-200000}" ROUNDS="${ROUNDS:-3}"
TMP="$(mktemp -d -t geproxy-bench.XXXXXX)"
CLUSTER_PID= PROXY_PID= BENCH_PID=
cleanup() {
    trap - INT TERM
    geproxy_stop "$BENCH_PID" 1
    geproxy_stop "$PROXY_PID" 5
    geproxy_stop "$CLUSTER_PID" 15
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

.venv/bin/python -m geproxy.devcluster --ports "$PORTS" --dir "$TMP/cluster" >"$TMP/cluster.log" 2>&1 &
CLUSTER_PID=$!
geproxy_wait_cluster "$CLUSTER_PID" "$TMP/cluster.log"
FIRST="$(.venv/bin/python -c 'import sys; from geproxy.devcluster import parse_ports
ps = parse_ports(sys.argv[1]); print(ps[0], ", ".join("127.0.0.1:%d" % p for p in ps), sep="\t")' "$PORTS")"
SERVERS="${FIRST#*$'\t'}" FIRST="${FIRST%%$'\t'*}"

cat >"$TMP/proxy.conf" <<CONF
Name = geproxy-bench
Bind = 127.0.0.1:$PPORT
WorkerProcesses = 1
ClientTimeout = 0
[ClusterServerPool]
MasterReadPriority = 100
Servers = $SERVERS
CONF
.venv/bin/geproxy -c "$TMP/proxy.conf" >"$TMP/proxy.log" 2>&1 &
PROXY_PID=$!
geproxy_wait_proxy "$PROXY_PID" "$PPORT" "$TMP/proxy.log"

# bench TARGET P: one redis-benchmark run; appends "TARGET P TEST RPS" lines to results.
bench() {
    local target=$1 p=$2 args=(-h 127.0.0.1 -p "$PPORT")
    [ "$target" = direct ] && args=(--cluster -h 127.0.0.1 -p "$FIRST")
    # in the background + wait, so that Ctrl-C reaches our trap at once
    timeout "${BENCH_TIMEOUT:-600}" redis-benchmark "${args[@]}" -q -c 50 -n "$N" -r 100000 \
        -t set,get -P "$p" </dev/null >"$TMP/out" 2>&1 &
    BENCH_PID=$!
    if ! wait "$BENCH_PID"; then
        echo "error: redis-benchmark against $target (-P $p) failed:" >&2
        tr '\r' '\n' <"$TMP/out" | tail -n 5 >&2
        if [ "$target" = geproxy ]; then tail -n 20 "$TMP/proxy.log" >&2; fi
        exit 1
    fi
    BENCH_PID=
    tr '\r' '\n' <"$TMP/out" |
        sed -n "s/^\([A-Z]*\): \([0-9.]*\) requests per second.*/$target $p \1 \2/p" >>"$TMP/results"
}

echo "N=$N ROUNDS=$ROUNDS: cluster $PORTS, geproxy 127.0.0.1:$PPORT (pid $PROXY_PID)"
for ((round = 1; round <= ROUNDS; round++)); do
    for p in 1 16; do
        if ((round % 2)); then order="direct geproxy"; else order="geproxy direct"; fi
        for target in $order; do
            echo "round $round/$ROUNDS: $target -P $p ..."
            bench "$target" "$p"
        done
    done
done

.venv/bin/python - "$TMP/results" "$PROXY_PID" <<'PY'
import os, statistics, sys
rps = {}
for line in open(sys.argv[1]):
    target, p, test, v = line.split()
    rps.setdefault((test, int(p)), {}).setdefault(target, []).append(float(v))
print('\n%-5s %3s %14s %14s %7s' % ('test', 'P', 'direct rps', 'geproxy rps', 'ratio'))
for (test, p), by in sorted(rps.items(), key=lambda kv: (kv[0][0] != 'SET', kv[0][1])):
    d, g = (statistics.median(by.get(t, [0])) for t in ('direct', 'geproxy'))
    print('%-5s %3d %14.0f %14.0f %7.2f' % (test, p, d, g, g / d if d else 0))
def proc(pid, name):
    try:
        with open('/proc/%s/%s' % (pid, name)) as f:
            return f.read()
    except OSError:
        return ''
def rss(pid):
    return ([l.split(':', 1)[1].strip() for l in proc(pid, 'status').splitlines()
             if l.startswith('VmRSS:')] or ['?'])[0]
pid = sys.argv[2]
kids = [d for d in os.listdir('/proc') if d.isdigit()
        and proc(d, 'stat').rsplit(')', 1)[-1].split()[1:2] == [pid]]
print('\ngeproxy RSS: %s (pid %s)%s' % (rss(pid), pid,
      ''.join('; worker pid %s: %s' % (k, rss(k)) for k in kids)))
PY
