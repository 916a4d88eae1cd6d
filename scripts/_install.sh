# Shared by test.sh, demo.sh and bench.sh (sourced, from the repo root): sets up the
# git-ignored .venv and the redis binaries, plus small process helpers for the scripts.
# Usage: geproxy_install [test]   ('test' also installs requirements-test.txt)

geproxy_install() {
    local reqs=(-r requirements.txt)
    [ "${1:-}" = test ] && reqs+=(-r requirements-test.txt)
    if [ ! -x .venv/bin/python ]; then
        python3 -m venv .venv || {
            echo "error: 'python3 -m venv' failed; install python3-venv (apt-get install python3-venv)" >&2
            return 1; }
    fi
    # skip pip (slow even when up to date) while the dependency files are unchanged
    local stamp
    stamp="$( (cat requirements*.txt setup.py pyproject.toml setup.cfg 2>/dev/null || true) | cksum) ${1:-}"
    if [ "$(cat .venv/.geproxy-stamp 2>/dev/null)" != "$stamp" ] &&
       [ "$(cat .venv/.geproxy-stamp 2>/dev/null)" != "${stamp% *} test" ]; then
        _geproxy_pip "${reqs[@]}"
        _geproxy_pip -e .
        echo "$stamp" > .venv/.geproxy-stamp
    fi
    geproxy_need_redis
}

# The Node client libraries tests/test_clients.py drives (ioredis, node-redis), into the git-ignored
# tests/js/node_modules; skipped, in one line, where node or npm is missing.
geproxy_need_node_clients() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        echo "node/npm not found: skipping the Node client tests (ioredis, node-redis)" >&2
        return 0
    fi
    local stamp
    stamp="$(cksum < tests/js/package.json)"
    [ "$(cat tests/js/node_modules/.geproxy-stamp 2>/dev/null)" = "$stamp" ] && return 0
    if npm install --prefix tests/js --no-audit --no-fund --no-package-lock --silent >/dev/null 2>&1; then
        echo "$stamp" > tests/js/node_modules/.geproxy-stamp
    else
        echo "npm install in tests/js failed: the Node client tests will be skipped" >&2
    fi
}

# pip, quiet; also drops the warnings about configured local indexes that do not exist.
_geproxy_pip() {
    .venv/bin/python -m pip install -q --disable-pip-version-check "$@" \
        2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2 || true)
}

# redis-server for the cluster nodes, redis-cli for `--cluster create`, redis-benchmark for bench.sh,
# redis-sentinel for the Sentinel pool, haproxy for the test of several geproxies behind it, openssl for the
# TLS tests' certificates (made at test time).
geproxy_need_redis() {
    local missing=0 b
    for b in redis-server redis-cli redis-benchmark redis-sentinel haproxy openssl; do
        command -v "$b" >/dev/null 2>&1 || missing=1
    done
    [ "$missing" = 0 ] && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "error: redis-server/redis-cli/redis-benchmark/redis-sentinel/haproxy/openssl not found: install them (e.g. 'sudo apt-get install redis-server redis-sentinel haproxy openssl')" >&2
        return 1
    fi
    echo "installing Debian packages redis-server, redis-sentinel, haproxy, openssl ..." >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools redis-sentinel haproxy openssl >/dev/null
    # the packages may start system services; the tests start their own
    (systemctl stop redis-server redis-sentinel haproxy || service redis-server stop || true) >/dev/null 2>&1
    (service redis-sentinel stop || true) >/dev/null 2>&1
}

# geproxy_stop PID [SECONDS]: SIGTERM, SIGKILL if still alive after SECONDS (default 5), reap.
geproxy_stop() {
    local pid=$1 i
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < ${2:-5} * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# geproxy_wait_cluster PID LOG: wait (60s) for `python -m geproxy.devcluster` (or devsentinel) to print "ready".
geproxy_wait_cluster() {
    local i
    for ((i = 0; i < 600; i++)); do
        grep -q '^dev\(cluster\|sentinel\) ready' "$2" 2>/dev/null && return 0
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    echo "error: the dev cluster did not start:" >&2
    cat "$2" >&2
    return 1
}

# geproxy_wait_proxy PID PORT LOG: wait (15s) until the proxy answers PING.
geproxy_wait_proxy() {
    local i
    for ((i = 0; i < 150; i++)); do
        [ "$(redis-cli -h 127.0.0.1 -p "$2" ping 2>/dev/null)" = PONG ] && return 0
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    echo "error: geproxy did not answer PING on 127.0.0.1:$2; its log:" >&2
    tail -n 40 "$3" >&2
    return 1
}
