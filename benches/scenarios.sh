#!/usr/bin/env bash
# Runs the memory, mass-expiry and many-clients scenarios (target/release/baton-scenarios)
# against baton and against Redis, side by side, and writes
# benches/results/scenarios-YYYY-MM-DD.md (table baton vs Redis, goal met/missed).
#
# Every scenario gets a fresh server of each kind on loopback; the servers are stopped on
# exit (only the PIDs this script started). RSS is read from /proc/PID/status.
#
# Usage: benches/scenarios.sh [--keys N] [--big] [--connections N] [--blocked N]
#                             [--baton-port P] [--redis-port P] [--out DIR] [--no-build]
# --keys: leases for memory and expiry (default 1000000); --big adds a 10M-lock memory
# run. Defaults take about 3 minutes after the build.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

KEYS=1000000
BIG=0
CONNS=10000
BLOCKED=5000
BATON_PORT=7471
REDIS_PORT=7472
OUT_DIR=benches/results
BUILD=1

while [[ $# -gt 0 ]]; do
    case "$1" in
        --keys) KEYS="$2"; shift 2 ;;
        --big) BIG=1; shift ;;
        --connections) CONNS="$2"; shift 2 ;;
        --blocked) BLOCKED="$2"; shift 2 ;;
        *) bench_common_arg "$@"; shift "$SHIFT_BY" ;;
    esac
done

bench_setup baton-scenarios
SCEN=target/release/baton-scenarios

# 10k client sockets in one process and 10k on each server: raise the fd limit as far as
# allowed (a container may cap the hard limit; 20000 is enough).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [[ $(ulimit -n) != unlimited && $(ulimit -n) -lt $((CONNS + 100)) ]]; then
    echo "scenarios.sh: fd limit $(ulimit -n) is below $((CONNS + 100))" >&2
    exit 1
fi

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
    bench_stop "$SERVER_PID"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_server baton|redis: a fresh server; sets SERVER_PID and PORT.
start_server() {
    case "$1" in
        baton)
            PORT=$BATON_PORT
            "$BATON" --port "$PORT" --persistence off --max-clients 20000 \
                >>"$WORK/baton.log" 2>&1 &
            ;;
        redis)
            PORT=$REDIS_PORT
            bench_redis "$PORT" "$WORK/redis.log" --appendonly no --maxclients 20000
            ;;
    esac
    SERVER_PID=$!
    wait_up "$PORT"
}

stop_server() {
    bench_stop "$SERVER_PID"
    SERVER_PID=
}

# run NAME SCENARIO [ARGS...]: the scenario against each server; keeps the JSON lines.
run() {
    local name=$1 scenario=$2 target
    shift 2
    for target in baton redis; do
        echo "== $name / $target"
        start_server "$target"
        "$SCEN" "$scenario" --port "$PORT" --target "$target" --server-pid "$SERVER_PID" "$@" \
            | tee "$WORK/$name-$target.txt"
        tail -n 1 "$WORK/$name-$target.txt" >"$WORK/$name-$target.json"
        stop_server
    done
}

STARTED=$(date +%s)
run memory memory --keys "$KEYS"
if [[ $BIG -eq 1 ]]; then
    run memory-big memory --keys 10000000 --connections 4
fi
run expiry expiry --keys "$KEYS"
run clients clients --connections "$CONNS" --blocked "$BLOCKED"
ELAPSED=$(( $(date +%s) - STARTED ))

mkdir -p "$OUT_DIR"
OUT="$OUT_DIR/scenarios-$(date +%F).md"
python3 - "$WORK" "$OUT" "$ELAPSED" "$KEYS" "$CONNS" "$BLOCKED" "$BIG" <<'EOF'
import json, os, subprocess, sys

work, out, elapsed, keys, conns, blocked, big = sys.argv[1:8]
def load(name, target):
    with open(os.path.join(work, f"{name}-{target}.json")) as f:
        return json.load(f)
def text(name, target):
    with open(os.path.join(work, f"{name}-{target}.txt")) as f:
        return f.read().rstrip()

def fmt(v, unit=""):
    if v is None:
        return "n/a"
    return f"{v:,.1f}{unit}" if isinstance(v, float) else f"{v:,}{unit}"

def goal(ok):
    return "met" if ok else "**missed**"

rows = []
names = ["memory"] + (["memory-big"] if big == "1" else []) + ["expiry", "clients"]
for name in ["memory"] + (["memory-big"] if big == "1" else []):
    b, r = load(name, "baton"), load(name, "redis")
    label = f"{b['keys']:,} held locks"
    rows.append((f"5. RSS bytes per held lock ({label})", fmt(b["bytes_per_lock"]),
                 fmt(r["bytes_per_lock"]), "baton ≤ Redis",
                 goal(b["bytes_per_lock"] <= r["bytes_per_lock"])))
    rows.append((f"5. RSS after loading, MiB ({label})", fmt(b["rss_after"] / 2**20),
                 fmt(r["rss_after"] / 2**20), "", ""))
    rows.append((f"5. load time, s ({label})", fmt(b["load_secs"]), fmt(r["load_secs"]), "", ""))

b, r = load("expiry", "baton"), load("expiry", "redis")
late_b, late_r = b["lateness_ms"], r["lateness_ms"]
rows.append(("6. last lease ended late by, ms (reply bound)", fmt(late_b), fmt(late_r),
             "< 5 ms", goal(late_b is not None and late_b < 5)))
rows.append(("6. lateness bounds, ms (lower .. upper)",
             f"{fmt(b['lateness_lower_ms'])} .. {fmt(b['lateness_upper_ms'])}",
             f"{fmt(r['lateness_lower_ms'])} .. {fmt(r['lateness_upper_ms'])}", "", ""))
for phase in ("before", "during"):
    hb, hr = b[f"ping_{phase}"], r[f"ping_{phase}"]
    rows.append((f"6. PING {phase} the expiry p50 / p99 / max, ms",
                 f"{hb['p50_ms']} / {hb['p99_ms']} / {hb['max_ms']}",
                 f"{hr['p50_ms']} / {hr['p99_ms']} / {hr['max_ms']}",
                 "p99 < 2 ms" if phase == "during" else "",
                 goal(hb["p99_ms"] < 2) if phase == "during" else ""))
rows.append(("6. idle time between loading and the window, ms",
             fmt(b["idle_before_window_ms"]), fmt(r["idle_before_window_ms"]), "", ""))

b, r = load("clients", "baton"), load("clients", "redis")
hb, hr = b["ping"], r["ping"]
rows.append((f"7. PING p50 / p99 / max with {b['connections']:,} conns ({b['blocked']:,} blocked), ms",
             f"{hb['p50_ms']} / {hb['p99_ms']} / {hb['max_ms']}",
             f"{hr['p50_ms']} / {hr['p99_ms']} / {hr['max_ms']}", "p99 < 2 ms (as 6)",
             goal(hb["p99_ms"] < 2)))
rows.append(("7. server RSS with the connections, MiB", fmt(b["rss_loaded"] / 2**20),
             fmt(r["rss_loaded"] / 2**20), "", ""))
rows.append(("7. RSS per connection, bytes", fmt(b["bytes_per_conn"]), fmt(r["bytes_per_conn"]), "", ""))
rows.append(("7. server-reported connected / blocked clients",
             f"{b['connected_clients']} / {b['blocked_clients']}",
             f"{r['connected_clients']} / {r['blocked_clients']}", "", ""))
rows.append(("7. time to open the connections, s", fmt(b["open_secs"]), fmt(r["open_secs"]), "", ""))

METHOD = """## Method

- **5 (memory)**: baton `LOCK lock:<n> <owner> 600000`, Redis `SET lock:<n> <owner> PX 600000`,
  the owner a random 36-byte UUID-shaped string; 4 connections, 1000 commands per pipelined
  batch. Bytes per lock = (VmRSS of the server after loading and 1 s of settling - VmRSS
  before) / DBSIZE. RSS counts allocator slack and freed-but-kept pages on both sides.
- **6 (mass expiry)**: each lease's ttl is computed when its batch is encoded, so that its
  deadline is a fixed instant W (15 s after loading starts) plus uniform(0..900) ms; the last
  1000 leases (of the total) are sent after the bulk, in one batch on a quiet connection,
  with deadline W + 999 ms. A lease starts at the server's grant, which lies between the
  batch's send time and its reply time, so the latest deadline lies between
  max(send + ttl) and max(reply + ttl); the bulk's spread stops at 900 ms so that a bulk
  lease delayed by a congested batch round trip cannot end after the tail, which makes the
  bracket as narrow as the tail batch's round trip. One connection polls DBSIZE every 1 ms;
  the end is the receipt of the first reply of 0. *Lateness* = that end - max(reply + ttl)
  (the figure the goal is judged on); the bounds are [send of the previous poll -
  max(reply + ttl), end - max(send + ttl)]. Another connection PINGs back to back from the
  end of loading: round trips sent before W are "before", from W to the end "during".
  Redis reclaims expired keys lazily or by its active-expire cycle, and DBSIZE counts keys
  not yet reclaimed, so its figure is informative only.
- **7 (many clients)**: baton: one connection holds `hot` (`LOCK hot holder 600000`), then
  the blocked connections send `LOCK hot waiter-<i> 60000 WAIT 0`; Redis: `BLPOP somelist 0`.
  The idle connections each answer one PING. Connections are opened 200 at a time; the run
  waits until the server's `INFO clients` blocked_clients reaches the blocked count, then
  one more connection PINGs back to back for 5 s. RSS per connection = (VmRSS with all of
  them - VmRSS before) / connections. At the end every blocked connection is checked to
  have received no reply.
- Client and server share the 2 cores; the client's own scheduling shows up in the
  latencies, for both servers alike.
"""

def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except Exception:
        return "?"

with open(out, "w") as f:
    f.write(f"# Scenarios 5-7: baton vs Redis ({sh('date +%F')})\n\n")
    f.write(f"Command: `benches/scenarios.sh --keys {keys} --connections {conns} --blocked {blocked}"
            f"{' --big' if big == '1' else ''}` ({elapsed} s of scenarios).\n\n")
    f.write(f"- baton `{sh('git rev-parse --short HEAD')}`, `--persistence off --max-clients 20000`\n")
    f.write(f"- {sh('redis-server --version')}, `--save \"\" --appendonly no --maxclients 20000`\n")
    f.write(f"- {sh('nproc')} cores ({sh('uname -r')}), shared with other work: figures are noisy, "
            "one run each, client and server on the same cores.\n\n")
    f.write("| figure | baton | Redis | goal | baton |\n|---|---|---|---|---|\n")
    for row in rows:
        f.write("| " + " | ".join(row) + " |\n")
    f.write("\n" + METHOD + "\n## Raw output\n\n")
    for name in names:
        for target in ("baton", "redis"):
            f.write(f"### {name} / {target}\n\n```text\n{text(name, target)}\n```\n\n")
print(f"wrote {out}")
EOF
cat "$OUT"
