#!/usr/bin/env bash
# Idempotent installer for the interop suites on a fresh Debian machine (run as root).
# Installs: redis-server + redis-tools (only if missing), a Python venv at
# tests/interop/.venv with requirements.txt, and node modules from package-lock.json.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

log() { echo "setup: $*"; }

# --- Debian packages -------------------------------------------------------
need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need_apt+=(redis-tools)
if ! command -v python3 >/dev/null 2>&1; then
    need_apt+=(python3 python3-venv)
elif ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    need_apt+=(python3-venv)
fi
if [ "${#need_apt[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "setup: missing ${need_apt[*]}; installing them needs apt-get and root" >&2
        exit 1
    fi
    log "apt-get install ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Debian's redis-server starts a system Redis on 6379, baton's default port, and
    # enables it at boot. The suites never use it (run.sh starts its own instances on free
    # ports), so a policy-rc.d keeps the install from starting any service, and the unit
    # is disabled afterwards. An existing policy-rc.d (containers often have one) is kept.
    policy=/usr/sbin/policy-rc.d
    made_policy=
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# tests/interop/setup.sh: no service starts while it installs\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        made_policy=1
        trap 'rm -f "$policy"' EXIT
    fi
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
    if [ -n "$made_policy" ]; then
        rm -f "$policy"
        trap - EXIT
    fi
    if [[ " ${need_apt[*]} " == *" redis-server "* ]] && command -v systemctl >/dev/null 2>&1; then
        systemctl disable --now redis-server >/dev/null 2>&1 \
            && log "disabled the redis-server service the package installed" || true
    fi
else
    log "redis-server, redis-cli and python3-venv already present"
fi

# --- Python venv -----------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
    log "creating .venv"
    python3 -m venv .venv
fi
if ! .venv/bin/python - <<'PY' >/dev/null 2>&1
import sys, importlib.metadata as md
want = {}
for line in open("requirements.txt"):
    line = line.split("#", 1)[0].strip()
    if line:
        name, ver = line.split("==")
        want[name] = ver
for name, ver in want.items():
    if md.version(name) != ver:
        sys.exit(1)
PY
then
    log "pip install -r requirements.txt"
    .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
else
    log "python requirements already satisfied"
fi

# --- Node modules ----------------------------------------------------------
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "setup: node and npm are required (node 20)" >&2
    exit 1
fi
if [ ! -d node_modules/redlock ] || [ ! -d node_modules/ioredis ] \
    || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    log "npm ci"
    npm ci --no-audit --no-fund --loglevel=error
else
    log "node modules already installed"
fi

log "done: redis $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p'), node $(node --version), $(.venv/bin/python --version)"
