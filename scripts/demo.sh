#!/usr/bin/env bash
# Demo: a throwaway 6-node Redis Cluster plus geproxy in front of it; Ctrl-C stops everything.
# `demo.sh --sentinel`: two groups (master + replica each) watched by three Redis Sentinels instead,
# with geproxy's [SentinelServerPool] (etc/sentinel.conf) in front.
# Env: GEPROXY_DEMO_PORTS=7000-7005 (cluster ports; etc/proxy.conf expects the default),
#      GEPROXY_DEMO_PROXY_PORT (default: the port of Bind in etc/proxy.conf, 7617).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
MODE=cluster
case "${1:-}" in
    --sentinel) MODE=sentinel ;;
    "") ;;
    *) echo "usage: scripts/demo.sh [--sentinel]" >&2; exit 2 ;;
esac
source scripts/_install.sh
geproxy_install

PORTS="${GEPROXY_DEMO_PORTS:-7000-7005}"
TMP="$(mktemp -d -t geproxy-demo.XXXXXX)"
CLUSTER_PID= PROXY_PID=
cleanup() {
    trap - INT TERM
    echo "stopping ..."
    geproxy_stop "$PROXY_PID" 5
    geproxy_stop "$CLUSTER_PID" 15   # devcluster needs up to 5s (+SIGKILL) for its nodes
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "$MODE" = sentinel ]; then
    .venv/bin/python -m geproxy.devsentinel --groups 2 --dir "$TMP/sentinel" >"$TMP/cluster.log" 2>&1 &
    CLUSTER_PID=$!
    geproxy_wait_cluster "$CLUSTER_PID" "$TMP/cluster.log"
    sed -n 's/^devsentinel ready: /sentinel setup: /p' "$TMP/cluster.log"
    SENTINELS="$(sed -n 's/^devsentinel ready: sentinels \(.*\) groups .*/\1/p' "$TMP/cluster.log" | sed 's/ /, /g')"
    CONF="$TMP/proxy.conf"   # etc/sentinel.conf, Sentinels pointing at ours
    sed "s/^\([[:space:]]*Sentinels[[:space:]]*=\).*/\1 $SENTINELS/" etc/sentinel.conf >"$CONF"
else
    .venv/bin/python -m geproxy.devcluster --ports "$PORTS" --dir "$TMP/cluster" >"$TMP/cluster.log" 2>&1 &
    CLUSTER_PID=$!
    geproxy_wait_cluster "$CLUSTER_PID" "$TMP/cluster.log"
    sed -n 's/^devcluster ready: /cluster: /p' "$TMP/cluster.log"
    CONF=etc/proxy.conf
fi
if [ "$MODE" = cluster ] && [ "$PORTS" != 7000-7005 ]; then   # same config, Servers pointing at our ports
    CONF="$TMP/proxy.conf"
    SERVERS="$(.venv/bin/python -c 'import sys; from geproxy.devcluster import parse_ports
print(", ".join("127.0.0.1:%d" % p for p in parse_ports(sys.argv[1])))' "$PORTS")"
    sed "s/^\([[:space:]]*Servers[[:space:]]*=\).*/\1 $SERVERS/" etc/proxy.conf >"$CONF"
fi
PROXY_PORT="$(sed -n 's/^[[:space:]]*Bind[[:space:]]*=.*:\([0-9][0-9]*\).*/\1/p' "$CONF" | head -n 1)"
PROXY_PORT="${GEPROXY_DEMO_PROXY_PORT:-${PROXY_PORT:-7617}}"

.venv/bin/geproxy -c "$CONF" --bind "127.0.0.1:$PROXY_PORT" >"$TMP/proxy.log" 2>&1 &
PROXY_PID=$!
geproxy_wait_proxy "$PROXY_PID" "$PROXY_PORT" "$TMP/proxy.log"

cat <<MSG
geproxy is listening on 127.0.0.1:$PROXY_PORT (config $CONF, log $TMP/proxy.log). Try:
    redis-cli -p $PROXY_PORT set a b
    redis-cli -p $PROXY_PORT get a
    redis-benchmark -p $PROXY_PORT -q -t set,get -n 100000
Press Ctrl-C to stop the proxy and the $MODE setup.
MSG
set +e
wait "$PROXY_PID"
rc=$?
echo "geproxy exited with status $rc; its log:" >&2
tail -n 20 "$TMP/proxy.log" >&2
exit "$rc"
