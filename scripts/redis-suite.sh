#!/usr/bin/env bash
# Redis's own test suite (the installed Redis version's, from Debian's source package) through geproxy
# in front of a 3+3 cluster, in --cluster-mode, one unit at a time; compared with the standalone
# results kept in tests/redis-suite-standalone.txt; fails below the floor in tests/redis-suite-floor.txt
# and when any unit hangs (--allow-hang: not on a hang).
# Usage: scripts/redis-suite.sh [--only unit/type/list ...] [--measure-standalone] [--report FILE]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/_install.sh
geproxy_install

version="$(redis-server --version | sed -n 's/.*v=\([0-9.]*\).*/\1/p')"
src=".redis-src/redis-$version"
if [ ! -x "$src/runtest" ]; then
    echo "fetching the Redis $version test suite from Debian's source package ..." >&2
    list=/etc/apt/sources.list.d/geproxy-redis-src.sources
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources > "$list"
    else
        list=/etc/apt/sources.list.d/geproxy-redis-src.list
        grep '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' > "$list"
    fi
    tmp="$(mktemp -d)"
    apt-get update -qq >/dev/null
    (cd "$tmp" && apt-get source --download-only -qq redis >/dev/null 2>&1)
    rm -f "$list"
    mkdir -p .redis-src
    tar xzf "$tmp"/redis_"$version".orig.tar.gz -C .redis-src
    rm -rf "$tmp"
fi
command -v tclsh >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tcl >/dev/null
exec .venv/bin/python scripts/redis_suite.py --src "$src" --floor "$(cat tests/redis-suite-floor.txt)" \
    --standalone tests/redis-suite-standalone.txt "$@"
