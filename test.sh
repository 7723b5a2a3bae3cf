#!/usr/bin/env bash
# Run every check herald has: lint, types, unit tests and integration tests on a real
# redis-server and real herald worker processes. Installs what it needs first.
#   ./test.sh                 everything, then the fault suite (tests/faults)
#   ./test.sh -k duplicate    extra arguments go to pytest (the fault suite then does not run)
#   ./test.sh --quick         lint, types, the manual and the unit tests: no server installed or
#                             started (extra arguments go to pytest), for the edit-test loop
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh

static_checks() {  # lint, types and the manual: no server needed
    say "ruff"
    .venv/bin/ruff check .
    .venv/bin/ruff format --check .
    say "mypy"
    .venv/bin/mypy
    say "docs"
    NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet
}

if [[ "${1:-}" == --quick ]]; then
    shift
    ensure_venv dev
    static_checks
    say "unit tests"
    exec .venv/bin/pytest tests/unit -q "$@"
fi
ensure_redis
ensure_postgres
ensure_postfix
ensure_venv dev
ensure_oracle
ensure_contract
ensure_chromium
ensure_compose
ensure_promtool
static_checks
say "pytest"
.venv/bin/pytest tests --ignore=tests/faults "$@"
if [[ $# -eq 0 ]]; then
    # The real system under load while it is broken, one fault at a time (docs/operations.md).
    say "fault suite"
    .venv/bin/pytest tests/faults -m faults
fi
