#!/usr/bin/env bash
# Before/after of one baton change in the same run: builds baton at git revision BASE (in a
# temporary worktree) and at the work tree, starts both on loopback, and runs one
# baton-bench workload against each in turn, alternating which goes first, for several
# rounds. Prints min / median / max of ops/s, hand-off or op p50 / p99 and server CPU per
# request for each build, and the after/before ratio of ops/s taken per round.
#
# Usage: benches/ab.sh BASE [--rounds N] [--duration SECONDS] [--baton-port P]
#                      [--base-port P] [--base-bin PATH] [--no-build] [-- BATON-BENCH ARGS...]
# Defaults: 8 rounds of 3 s, workload `-w hot-key-native` (64 clients on one key), the
# work tree's build on port 7400 (--baton-port), BASE's on 7401 (--base-port).
# --base-bin PATH uses a release binary already built at BASE instead of building it
# (several runs against one base then build it once). Example:
#     bash benches/ab.sh ce9b96f -- -w hot-key-native
set -euo pipefail
source "$(dirname "$0")/lib.sh"

BASE=${1:-}
[[ -n $BASE && $BASE != -* ]] || { bench_usage; exit 2; }
shift
ROUNDS=8 DURATION=3 BATON_PORT=7400 BASE_PORT=7401 BUILD=1 BASE_BIN=
BENCH_ARGS=(-w hot-key-native)
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --base-port) BASE_PORT="$2"; shift 2 ;;
        --base-bin) BASE_BIN=$(realpath "$2"); shift 2 ;;
        --) shift; BENCH_ARGS=("$@"); break ;;
        *) bench_common_arg "$@"; shift "$SHIFT_BY" ;;
    esac
done

bench_setup baton-bench
WORK=$(mktemp -d)
BASE_TREE="$WORK/base"
OLD_PID= NEW_PID=
# Also on a failed build: the servers this script started, the worktree and WORK go.
cleanup() {
    bench_stop "$OLD_PID" "$NEW_PID"
    git worktree remove --force "$BASE_TREE" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
BASE_REV=$(git rev-parse --short "$BASE")
if [[ -n $BASE_BIN ]]; then
    OLD_BATON=$BASE_BIN
else
    git worktree add -q --detach "$BASE_TREE" "$BASE"
    # The base keeps its own target dir in WORK: the work tree's build is not disturbed.
    (cd "$BASE_TREE" && CARGO_TARGET_DIR="$WORK/target" cargo build --release --bin baton)
    OLD_BATON="$WORK/target/release/baton"
fi
NEW_REV=$(git rev-parse --short HEAD)$( [[ -z $(git status --porcelain -uno) ]] || echo "+changes")

"$OLD_BATON" --port "$BASE_PORT" --persistence off >>"$WORK/old.log" 2>&1 &
OLD_PID=$!
"$BATON" --port "$BATON_PORT" --persistence off >>"$WORK/new.log" 2>&1 &
NEW_PID=$!
wait_up "$BASE_PORT"
wait_up "$BATON_PORT"

RESULTS="$WORK/results.jsonl"
run() {
    local label=$1 port=$2 pid=$3
    target/release/baton-bench --port "$port" -d "$DURATION" --server-pid "$pid" \
        --label "$label" "${BENCH_ARGS[@]}" | tail -n 1 >>"$RESULTS"
}
for round in $(seq "$ROUNDS"); do
    if (( round % 2 )); then
        run before "$BASE_PORT" "$OLD_PID"; run after "$BATON_PORT" "$NEW_PID"
    else
        run after "$BATON_PORT" "$NEW_PID"; run before "$BASE_PORT" "$OLD_PID"
    fi
    echo "$SCRIPT: round $round of $ROUNDS done" >&2
done

python3 - "$RESULTS" "$BASE_REV" "$NEW_REV" "${BENCH_ARGS[*]}" <<'EOF'
import json, statistics, sys
path, base, new, args = sys.argv[1:]
runs = [json.loads(line) for line in open(path)]
def mmm(xs):
    xs = sorted(xs)
    return f"{xs[0]:,.1f} / {statistics.median(xs):,.1f} / {xs[-1]:,.1f}"
print(f"baton-bench {args}: before = {base}, after = {new}; min / median / max over "
      f"{len(runs) // 2} rounds")
by = {lab: [r for r in runs if r["label"] == lab] for lab in ("before", "after")}
for lab, rs in by.items():
    print(f"  {lab:6}  ops/s {mmm(r['ops_per_sec'] for r in rs)}   p50 µs {mmm(r['p50_us'] for r in rs)}"
          f"   p99 µs {mmm(r['p99_us'] for r in rs)}"
          f"   CPU µs/req {mmm(r['server_cpu_us_per_request'] or 0 for r in rs)}")
ratios = [a["ops_per_sec"] / b["ops_per_sec"] for b, a in zip(by["before"], by["after"])]
print(f"  ratio after/before, ops/s per round: {mmm(ratios)}")
EOF
