#!/usr/bin/env bash
# Run every check herald has: lint, types, unit tests and integration tests on a real
# redis-server and real herald worker processes. Installs what it needs first.
#   ./test.sh                 everything
#   ./test.sh -k duplicate    extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
ensure_redis
ensure_postgres
ensure_venv
ensure_oracle
ensure_contract
ensure_chromium
ensure_compose
say "ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
say "mypy"
.venv/bin/mypy
say "pytest"
.venv/bin/pytest tests "$@"
