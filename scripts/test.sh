#!/usr/bin/env bash
# Run the test suite from a fresh clone: .venv + dependencies + redis-server, then pytest.
# Usage: scripts/test.sh [pytest args]   (default: tests/)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/_install.sh
geproxy_install test
geproxy_need_node_clients
[ $# -gt 0 ] || set -- tests/
export PYTEST_TIMEOUT="${PYTEST_TIMEOUT:-300}"  # pytest-timeout: no test may hang CI
exec .venv/bin/python -m pytest -q "$@"
