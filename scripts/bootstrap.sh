# Sourced by ./run.sh and ./test.sh: make this machine able to run herald.
# Installs what is missing (Debian's redis-server and postgresql, a Python virtual environment
# with herald and its dependencies, Node packages for the SMS segment oracle) and says clearly
# what it cannot do.

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 2; }

apt_install() {
  local packages=("$@")
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing ${packages[*]} (Debian packages)"
    if [ -z "${HERALD_APT_UPDATED:-}" ]; then
      DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || die "apt-get update failed"
      export HERALD_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null \
      || die "apt-get install ${packages[*]} failed"
  elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then
    say "installing ${packages[*]} with sudo"
    sudo apt-get update -qq >/dev/null && sudo apt-get install -y -qq "${packages[@]}" >/dev/null \
      || die "sudo apt-get install ${packages[*]} failed"
  else
    die "${packages[*]} not found and cannot be installed here: install it with your package manager"
  fi
}

ensure_redis() {
  command -v redis-server >/dev/null || apt_install redis-server
  command -v redis-server >/dev/null || die "redis-server is still missing after installing it"
}

# uv installs exactly what uv.lock says (refresh it with `scripts/lock.sh`); this release of uv
# is installed on first use into .tools/, beside the project, not on the machine.
HERALD_UV_VERSION=0.13.8

ensure_uv() {
  local python="${HERALD_PYTHON:-python3}"
  command -v "$python" >/dev/null || die "python3 (3.11 or newer) is required"
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "Python 3.11 or newer is required ($("$python" --version 2>&1) found)"
  UV=.tools/bin/uv
  if [ ! -x "$UV" ] || [ "$("$UV" --version 2>/dev/null | cut -d' ' -f2)" != "$HERALD_UV_VERSION" ]; then
    say "installing uv $HERALD_UV_VERSION into .tools"
    "$python" -m venv .tools || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
    .tools/bin/python -m pip install -q --disable-pip-version-check "uv==$HERALD_UV_VERSION" \
      || die "installing uv $HERALD_UV_VERSION failed"
  fi
  export UV_PYTHON="$python" UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT=.venv
}

# .venv holds herald and exactly the locked versions of its dependencies. `ensure_venv` adds
# only what running needs and leaves the test tools alone; `ensure_venv dev` makes .venv match
# the lock with the dev extra (what ./test.sh and CI run with).
ensure_venv() {
  ensure_uv
  local args=(sync --frozen --quiet)
  if [ "${1:-}" = dev ]; then
    args+=(--extra dev)
  else
    args+=(--inexact)
  fi
  [ -x .venv/bin/herald ] || say "installing herald and its locked dependencies into .venv"
  "$UV" "${args[@]}" || die "uv sync failed: uv.lock must match pyproject.toml (scripts/lock.sh refreshes it)"
  .venv/bin/python -c 'import herald, worker, celery' || die "installing herald into .venv failed"
}

ensure_oracle() {
  command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
  if [ ! -d tests/oracle/node_modules/sms-segments-calculator ]; then
    say "installing the SMS segment oracle (npm)"
    npm ci --prefix tests/oracle --no-audit --no-fund --loglevel=error >/dev/null || die "npm ci failed"
  fi
}

ensure_contract() {
  command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
  if [ ! -x tests/contract/node_modules/.bin/prism ]; then
    say "installing Stoplight Prism for the Twilio contract check (npm)"
    npm ci --prefix tests/contract --no-audit --no-fund --loglevel=error >/dev/null || die "npm ci (tests/contract) failed"
  fi
}

postgres_bin() {  # the directory of Debian's PostgreSQL server programs (not on PATH there)
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ]; then
    echo "$dir"
  elif command -v initdb >/dev/null && command -v postgres >/dev/null; then
    dirname "$(command -v initdb)"
  else
    return 1
  fi
}

ensure_postgres() {  # the ledger's tests start their own server (as the postgres user when root)
  postgres_bin >/dev/null || apt_install postgresql
  postgres_bin >/dev/null || die "PostgreSQL's initdb and postgres are still missing after installing postgresql"
}

ensure_postfix() {  # a real MTA for the email-on-the-wire test: installed, never configured or started
  if [ ! -x /usr/sbin/postfix ]; then
    # "No configuration": no system Postfix on port 25; the test runs its own from a temp directory
    local answer="postfix postfix/main_mailer_type select No configuration"
    if [ "$(id -u)" = 0 ]; then
      echo "$answer" | debconf-set-selections 2>/dev/null || true
    elif command -v sudo >/dev/null; then
      echo "$answer" | sudo debconf-set-selections 2>/dev/null || true
    fi
    apt_install postfix
  fi
  [ -x /usr/sbin/postfix ] || die "postfix is still missing after installing it"
}

ensure_chromium() {  # the operator page's browser tests drive Debian's headless Chromium (Playwright)
  command -v chromium >/dev/null || apt_install chromium
  command -v chromium >/dev/null || die "chromium is still missing after installing it"
  # the pages in zh-CN: without a CJK font the screenshots show boxes instead of characters
  [ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || apt_install fonts-wqy-microhei
}

ensure_promtool() {  # deploy/alerts.yml is checked and unit-tested by Prometheus's own promtool
  if ! command -v promtool >/dev/null; then
    # Debian's prometheus package ships promtool; keep its service from starting while installing
    local policy=/usr/sbin/policy-rc.d made=""
    if [ "$(id -u)" = 0 ] && [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made=1
    fi
    apt_install prometheus
    if [ -n "$made" ]; then rm -f "$policy"; fi
  fi
  command -v promtool >/dev/null || die "promtool is still missing after installing prometheus"
}

ensure_compose() {  # deploy/compose.yaml is checked by a real Compose implementation (`config`, no daemon)
  command -v docker-compose >/dev/null || apt_install docker-compose
  command -v docker-compose >/dev/null || die "docker-compose is still missing after installing it"
}
