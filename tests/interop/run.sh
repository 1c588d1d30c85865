#!/usr/bin/env bash
# Run every interop suite against three fresh server instances.
#   tests/interop/run.sh redis
#   tests/interop/run.sh baton PATH_TO_BATON_BINARY
# Exports to the suites: INTEROP_TARGET (redis|baton), INTEROP_HOST,
# INTEROP_PORTS="p1,p2,p3", INTEROP_PIDS="pid1,pid2,pid3" (test_pottery.py
# SIGKILLs the third one in its last test).
# Optional: INTEROP_COMMANDSTATS=1 prints each server's INFO commandstats at
# the end (to see which commands the clients sent).
# Last line: "interop: N passed, N failed".
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
HOST=127.0.0.1
SUITE_TIMEOUT="${INTEROP_SUITE_TIMEOUT:-180}"

usage() { echo "usage: $0 redis | $0 baton PATH_TO_BATON_BINARY" >&2; exit 2; }
TARGET="${1:-}"
case "$TARGET" in
    redis) command -v redis-server >/dev/null || { echo "run.sh: redis-server not found (run setup.sh)" >&2; exit 2; } ;;
    baton)
        BATON="${2:-}"; [ -n "$BATON" ] || usage
        [ -x "$BATON" ] || { echo "run.sh: $BATON is not an executable" >&2; exit 2; }
        BATON="$(cd "$(dirname "$BATON")" && pwd)/$(basename "$BATON")" ;;
    *) usage ;;
esac
command -v redis-cli >/dev/null || { echo "run.sh: redis-cli not found (run setup.sh)" >&2; exit 2; }
[ -x "$HERE/.venv/bin/python" ] && [ -d "$HERE/node_modules/redlock" ] \
    || { echo "run.sh: run tests/interop/setup.sh first" >&2; exit 2; }

WORK="$(mktemp -d /tmp/baton-interop.XXXXXX)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Three free loopback ports (bound together so they are distinct).
read -r -a PORTS < <("$HERE/.venv/bin/python" - <<'PY'
import socket
socks = []
for _ in range(3):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks: s.close()
PY
)
[ "${#PORTS[@]}" -eq 3 ] || { echo "run.sh: could not pick free ports" >&2; exit 2; }

start_server() {  # $1 = index, $2 = port
    local dir="$WORK/s$1"; mkdir -p "$dir"
    if [ "$TARGET" = redis ]; then
        (cd "$dir" && exec redis-server --port "$2" --bind "$HOST" --save '' --appendonly no \
            --daemonize no --dir "$dir") >"$dir/log" 2>&1 &
    else
        (cd "$dir" && exec "$BATON" --bind "$HOST" --port "$2" --persistence off) >"$dir/log" 2>&1 &
    fi
    PIDS+=("$!")
    disown "$!"   # no "Killed" job notice when test_pottery.py SIGKILLs it
}

for i in 0 1 2; do start_server "$i" "${PORTS[$i]}"; done
for i in 0 1 2; do
    deadline=$((SECONDS + 10)); up=0
    while [ "$SECONDS" -lt "$deadline" ]; do
        if [ "$(timeout 2 redis-cli -h "$HOST" -p "${PORTS[$i]}" PING 2>/dev/null)" = PONG ]; then up=1; break; fi
        kill -0 "${PIDS[$i]}" 2>/dev/null || break
        sleep 0.1
    done
    if [ "$up" != 1 ]; then
        echo "run.sh: server $i (port ${PORTS[$i]}) exited or did not answer PING within 10 s; its log:" >&2
        tail -n 30 "$WORK/s$i/log" >&2
        echo "interop: 0 passed, 1 failed"
        exit 1
    fi
done

export INTEROP_TARGET="$TARGET" INTEROP_HOST="$HOST"
export INTEROP_PORTS="$(IFS=,; echo "${PORTS[*]}")" INTEROP_PIDS="$(IFS=,; echo "${PIDS[*]}")"
echo "run.sh: target=$TARGET ports=$INTEROP_PORTS pids=$INTEROP_PIDS"

TOTAL_PASS=0; TOTAL_FAIL=0; SUITE_SUMMARY=()
record() {  # $1 = suite, $2 = passed, $3 = failed, $4 = exit code
    local p="$2" f="$3"
    # A suite that exited non-zero without reporting a failure (crash, timeout,
    # collection error) counts as one failure so it can never pass silently.
    if [ "$4" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    TOTAL_PASS=$((TOTAL_PASS + p)); TOTAL_FAIL=$((TOTAL_FAIL + f))
    SUITE_SUMMARY+=("$(printf '  %-20s %3d passed, %3d failed (exit %d)' "$1" "$p" "$f" "$4")")
}
num() { grep -oE "[0-9]+ $1" | tail -n1 | grep -oE '^[0-9]+' || echo 0; }

run_pytest() {  # $1 = file
    local out="$WORK/$1.out" rc
    echo; echo "=== $1 ==="
    (cd "$HERE" && timeout -k 5 "$SUITE_TIMEOUT" .venv/bin/python -m pytest -p no:cacheprovider \
        -v -rfE "$1") 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    local last; last="$(grep -E '^=+ .*(passed|failed|error|no tests ran).* in [0-9.]+s' "$out" | tail -n1)"
    local p f e
    p="$(echo "$last" | num passed)"; f="$(echo "$last" | num failed)"; e="$(echo "$last" | num 'errors?')"
    record "$1" "$p" "$((f + e))" "$rc"
}

run_node() {  # $1 = file
    local out="$WORK/$1.out" rc
    echo; echo "=== $1 ==="
    (cd "$HERE" && timeout -k 5 "$SUITE_TIMEOUT" node --test --test-reporter=tap "$1") 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    local p f
    p="$(grep -E '^# pass [0-9]+' "$out" | tail -n1 | grep -oE '[0-9]+' || echo 0)"
    f="$(grep -E '^# fail [0-9]+' "$out" | tail -n1 | grep -oE '[0-9]+' || echo 0)"
    record "$1" "$p" "$f" "$rc"
}

run_sh() {  # $1 = file
    local out="$WORK/$1.out" rc
    echo; echo "=== $1 ==="
    (cd "$HERE" && timeout -k 5 "$SUITE_TIMEOUT" bash "$1") 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    local last; last="$(grep -E '[0-9]+ passed, [0-9]+ failed' "$out" | tail -n1)"
    record "$1" "$(echo "$last" | num passed)" "$(echo "$last" | num failed)" "$rc"
}

commandstats() {
    [ "${INTEROP_COMMANDSTATS:-0}" = 1 ] || return 0
    for i in 0 1 2; do
        echo; echo "=== INFO commandstats, server $i (port ${PORTS[$i]}) ==="
        timeout 2 redis-cli -h "$HOST" -p "${PORTS[$i]}" INFO commandstats 2>/dev/null | tr -d '\r' \
            | sed -n 's/^cmdstat_\([^:]*\):calls=\([0-9]*\).*/  \1 \2/p'
    done
}

# Order matters: test_pottery.py kills server 3 in its last test, so it runs last.
run_sh test_redis_cli.sh
run_pytest test_redis_py.py
run_node test_redlock.mjs
run_pytest test_pottery.py
commandstats  # the killed third server shows nothing

echo
echo "Summary (target=$TARGET):"
printf '%s\n' "${SUITE_SUMMARY[@]}"
echo "interop: $TOTAL_PASS passed, $TOTAL_FAIL failed"
[ "$TOTAL_FAIL" -eq 0 ]
