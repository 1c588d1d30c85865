#!/usr/bin/env bash
# The whole test suite: unit, integration and property tests of every workspace member
# (the server, baton-client, the bench tools), then the interop suites with real client
# libraries against a real Redis and against baton.
#
# What it needs (checked first; a missing piece stops it before anything is built):
#   - Rust 1.88 or later (cargo), as Cargo.toml's rust-version says;
#   - Python 3 with venv (the redis-py and pottery suites) and network access to PyPI
#     the first time;
#   - node 20 or later with npm (the node-redlock suite) and access to the npm registry
#     the first time;
#   - redis-server and redis-cli (Redis 7). When they are missing, tests/interop/setup.sh
#     installs them (and python3-venv) with apt-get, which needs a Debian or Ubuntu
#     machine and root. The package's own Redis service is kept from starting, so nothing
#     is left listening on port 6379, baton's default port.
# The suites start their own servers on free loopback ports and stop them when done.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
can_apt() { [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; }
if ! command -v cargo >/dev/null 2>&1; then
    missing+=("Rust 1.88 or later (cargo): https://rustup.rs")
else
    rust="$(rustc --version 2>/dev/null | sed -n 's/^rustc \([0-9]*\)\.\([0-9]*\).*/\1 \2/p')"
    read -r rust_major rust_minor <<<"${rust:-0 0}"
    if [ "$rust_major" -lt 1 ] || { [ "$rust_major" -eq 1 ] && [ "$rust_minor" -lt 88 ]; }; then
        missing+=("Rust 1.88 or later (found: $(rustc --version 2>/dev/null || echo none)): rustup update")
    fi
fi
if ! command -v python3 >/dev/null 2>&1; then
    can_apt || missing+=("Python 3 with venv (Debian: apt-get install python3 python3-venv)")
elif ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    can_apt || missing+=("Python 3's venv module (Debian: apt-get install python3-venv)")
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    missing+=("node 20 or later with npm: https://nodejs.org")
else
    node_major="$(node --version | sed -n 's/^v\([0-9]*\).*/\1/p')"
    if [ "${node_major:-0}" -lt 20 ]; then
        missing+=("node 20 or later (found: $(node --version))")
    fi
fi
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    can_apt || missing+=("redis-server and redis-cli, Redis 7 (Debian: run this script as root \
to have them installed, or apt-get install redis-server redis-tools yourself)")
fi
if [ "${#missing[@]}" -gt 0 ]; then
    echo "tests/run-all.sh: cannot run, missing:" >&2
    printf '  - %s\n' "${missing[@]}" >&2
    exit 1
fi

# A fixed seed keeps CI reproducible; `PROPTEST_RNG_SEED=$RANDOM bash tests/run-all.sh`
# (or plain `cargo test`) explores new cases. Shrunk failures become plain tests in
# tests/model.rs.
export PROPTEST_RNG_SEED="${PROPTEST_RNG_SEED:-20261201}"
cargo test --workspace --all-targets
# --all-targets leaves out doctests (baton-client's examples in its docs and README).
cargo test --workspace --doc
cargo build --bin baton
bash tests/interop/setup.sh
bash tests/interop/run.sh redis
bash tests/interop/run.sh baton "$PWD/target/debug/baton"
