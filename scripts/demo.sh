#!/usr/bin/env bash
# Demo: a throwaway 6-node Redis Cluster plus geproxy in front of it; Ctrl-C stops everything.
# Env: GEPROXY_DEMO_PORTS=7000-7005 (cluster ports; etc/proxy.conf expects the default),
#      GEPROXY_DEMO_PROXY_PORT (default: the port of Bind in etc/proxy.conf, 7617).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
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

.venv/bin/python -m geproxy.devcluster --ports "$PORTS" --dir "$TMP/cluster" >"$TMP/cluster.log" 2>&1 &
CLUSTER_PID=$!
geproxy_wait_cluster "$CLUSTER_PID" "$TMP/cluster.log"
sed -n 's/^devcluster ready: /cluster: /p' "$TMP/cluster.log"

CONF=etc/proxy.conf
if [ "$PORTS" != 7000-7005 ]; then   # same config, Servers pointing at our ports
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
Press Ctrl-C to stop the proxy and the cluster.
MSG
set +e
wait "$PROXY_PID"
rc=$?
echo "geproxy exited with status $rc; its log:" >&2
tail -n 20 "$TMP/proxy.log" >&2
exit "$rc"
