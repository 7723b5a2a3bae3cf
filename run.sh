#!/usr/bin/env bash
# Run herald for real on embedded defaults: its own redis-server, a worker, the scheduler,
# the outbox providers and the sample reminders. Ctrl-C stops everything.
#   ./run.sh            keep running after the samples
#   ./run.sh --once     smoke mode: deliver the samples, check them, stop, exit non-zero on surprise
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
ensure_redis
ensure_venv
exec .venv/bin/herald run "$@"
