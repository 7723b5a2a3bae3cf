#!/usr/bin/env bash
# Refresh uv.lock: every dependency at the newest release that pyproject.toml allows.
# Run it on the first working day of each month (and after a security advisory), then
# ./test.sh, and commit uv.lock with the versions that moved in the message:
#   scripts/lock.sh                  upgrade everything
#   scripts/lock.sh --upgrade-package redis   upgrade one package (other uv lock options too)
# After an edit of pyproject.toml, `scripts/lock.sh --keep` re-resolves only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
ensure_uv
before=$(mktemp)
trap 'rm -f "$before"' EXIT
[ -f uv.lock ] && cp uv.lock "$before"
if [ "${1:-}" = --keep ]; then
  shift
  "$UV" lock "$@"
elif [ $# -gt 0 ]; then
  "$UV" lock "$@"
else
  "$UV" lock --upgrade
fi
# the versions that moved, one line each
"${HERALD_PYTHON:-python3}" - "$before" uv.lock <<'PY'
import sys, tomllib
def versions(path):
    try:
        with open(path, "rb") as f:
            return {p["name"]: p.get("version", "") for p in tomllib.load(f).get("package", [])}
    except (OSError, tomllib.TOMLDecodeError):
        return {}
old, new = versions(sys.argv[1]), versions(sys.argv[2])
moved = [f"{n}: {old.get(n, '-')} -> {new.get(n, '-')}" for n in sorted(old.keys() | new.keys()) if old.get(n) != new.get(n)]
print("\n".join(moved) if moved else "uv.lock: nothing moved")
PY
