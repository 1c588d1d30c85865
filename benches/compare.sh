#!/usr/bin/env bash
# Compares baton with Redis on lock workloads, using target/release/baton-bench.
#
# Starts baton and redis-server on loopback, runs each comparison row for a few seconds
# per server, alternating which server goes first inside each round, for several rounds,
# and writes benches/results/YYYY-MM-DD.md (table: min/median/max, ratio baton/Redis per
# round) plus an SVG bar chart of the ratios next to it (a second run on the same day
# gets YYYY-MM-DD-b.md, -c, ...). Stops what it started on exit.
#
# Durability rows: baton native-cycle with --persistence on and --appendfsync
# always/everysec/no and with --persistence off, and Redis redlock-cycle with
# --appendonly yes --appendfsync always/everysec, all at --dur-connections (50), P=1. Each
# configuration gets its own server started on --dur-port with a fresh data directory
# under --dur-dir (default: the run's mktemp dir) and is stopped after its run; the six
# alternate direction from round to round.
#
# Usage: benches/compare.sh [--rounds N] [--duration SECONDS] [--connections C]
#                           [--baton-port P] [--redis-port P] [--dur-port P]
#                           [--dur-connections C] [--dur-dir DIR] [--out DIR] [--no-build]
# Defaults: 5 rounds of 3 s per run: (8 rows x 2 servers + 6 durability configurations)
# x 5 rounds, about 6 minutes.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ROUNDS=5
DURATION=3
CONNS=50
BATON_PORT=7461
REDIS_PORT=7462
DUR_PORT=7463
DUR_CONNS=50
DUR_DIR=
OUT_DIR=benches/results
BUILD=1

while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --connections) CONNS="$2"; shift 2 ;;
        --baton-port) BATON_PORT="$2"; shift 2 ;;
        --redis-port) REDIS_PORT="$2"; shift 2 ;;
        --dur-port) DUR_PORT="$2"; shift 2 ;;
        --dur-connections) DUR_CONNS="$2"; shift 2 ;;
        --dur-dir) DUR_DIR="$2"; shift 2 ;;
        *) bench_common_arg "$@"; shift "$SHIFT_BY" ;;
    esac
done

bench_setup baton-bench
BENCH=target/release/baton-bench

WORK=$(mktemp -d)
if [[ -z $DUR_DIR ]]; then DUR_DIR=$WORK/dur; fi
mkdir -p "$DUR_DIR"
DUR_BASE=$(mktemp -d "$DUR_DIR/run.XXXXXX")
BATON_PID=
REDIS_PID=
DUR_PID=
STARTED=$(date +%s)
cleanup() {
    bench_stop "$BATON_PID" "$REDIS_PID" "$DUR_PID"
    rm -rf "$DUR_BASE" "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$BATON" --port "$BATON_PORT" --persistence off >"$WORK/baton.log" 2>&1 &
BATON_PID=$!
bench_redis "$REDIS_PORT" "$WORK/redis.log" --appendonly no
REDIS_PID=$!
wait_up "$BATON_PORT"
wait_up "$REDIS_PORT"

# Rows: id | title | baton-bench args on baton | args on Redis.
ROWS=(
    "ping1|PING, P=1|-w ping -P 1|-w ping -P 1"
    "ping32|PING, P=32|-w ping -P 32|-w ping -P 32"
    "pingser|PING, 1 connection, P=1: one round trip at a time, the ceiling of any serial hand-off|-w ping -c 1 -P 1|-w ping -c 1 -P 1"
    "cycle1|lock cycle, P=1: baton native-cycle vs Redis redlock-cycle|-w native-cycle -P 1|-w redlock-cycle -P 1"
    "cycle32|lock cycle, P=32: baton native-cycle vs Redis redlock-cycle|-w native-cycle -P 32|-w redlock-cycle -P 32"
    "redlock1|redlock-cycle on both (SET NX PX + EVALSHA), P=1|-w redlock-cycle -P 1 --release evalsha|-w redlock-cycle -P 1 --release evalsha"
    "hot|hot key, 64 clients: baton LOCK WAIT vs Redis SET NX retry 10 ms (grants/s, hand-off)|-w hot-key-native -c 64|-w hot-key-retry -c 64 --retry-ms 10"
    "hot100|hot key, 64 clients: baton LOCK WAIT vs Redis SET NX retry 100 ms (grants/s, hand-off)|-w hot-key-native -c 64|-w hot-key-retry -c 64 --retry-ms 100"
)

# Durability configurations: id | title | server | server flags | baton-bench args.
# The data directory (--dir) is added per run, fresh each time.
DUR=(
    "b-always|baton, --appendfsync always|baton|--persistence on --appendfsync always|-w native-cycle -P 1"
    "b-everysec|baton, --appendfsync everysec|baton|--persistence on --appendfsync everysec|-w native-cycle -P 1"
    "b-no|baton, --appendfsync no|baton|--persistence on --appendfsync no|-w native-cycle -P 1"
    "b-off|baton, --persistence off|baton|--persistence off|-w native-cycle -P 1"
    "r-always|Redis, --appendonly yes --appendfsync always|redis|--appendonly yes --appendfsync always|-w redlock-cycle -P 1 --release evalsha"
    "r-everysec|Redis, --appendonly yes --appendfsync everysec|redis|--appendonly yes --appendfsync everysec|-w redlock-cycle -P 1 --release evalsha"
)

RESULTS="$WORK/results.jsonl"
: >"$RESULTS"

run_one() {
    local row=$1 round=$2 server=$3 args=$4 port pid line
    if [[ $server == baton ]]; then port=$BATON_PORT; pid=$BATON_PID; else port=$REDIS_PORT; pid=$REDIS_PID; fi
    if [[ $server == dur ]]; then port=$DUR_PORT; pid=$DUR_PID; fi
    # -c from the row (hot key) wins over the default: clap takes the last one given.
    # shellcheck disable=SC2086
    if ! line=$("$BENCH" --port "$port" -c "$CONNS" -d "$DURATION" --server-pid "$pid" \
        --label "$server" $args | tail -n 1); then
        echo "compare.sh: $row on $server failed in round $round" >&2
        line='{"failed":true}'
    fi
    printf '{"row":"%s","round":%d,"server":"%s","result":%s}\n' \
        "$row" "$round" "$server" "$line" >>"$RESULTS"
    echo "  $row $server: $line"
}

# Starts one durability configuration on DUR_PORT with a fresh data directory.
start_dur() {
    local id=$1 round=$2 server=$3 flags=$4 dir
    dir="$DUR_BASE/$id-$round"
    mkdir -p "$dir"
    # shellcheck disable=SC2086
    if [[ $server == baton ]]; then
        "$BATON" --port "$DUR_PORT" $flags --dir "$dir" >"$WORK/dur-$id.log" 2>&1 &
    else
        bench_redis "$DUR_PORT" "$WORK/dur-$id.log" $flags --dir "$dir"
    fi
    DUR_PID=$!
    wait_up "$DUR_PORT"
}

# Stops the running durability server (SIGTERM, then waits for it) and drops its data.
stop_dur() {
    local id=$1 round=$2
    bench_stop "$DUR_PID"
    DUR_PID=
    rm -rf "${DUR_BASE:?}/$id-$round"
}

run_dur() {
    local round=$1 spec=$2 id title server flags args
    IFS='|' read -r id title server flags args <<<"$spec"
    start_dur "$id" "$round" "$server" "$flags"
    # The server tag in the results is the configuration's; run_one reads DUR_PID.
    run_one "dur:$id" "$round" dur "-c $DUR_CONNS $args"
    stop_dur "$id" "$round"
}

for round in $(seq "$ROUNDS"); do
    echo "round $round/$ROUNDS"
    for spec in "${ROWS[@]}"; do
        IFS='|' read -r id _title baton_args redis_args <<<"$spec"
        # Alternate which server runs first, so drift in machine load favours neither.
        if (( round % 2 )); then
            run_one "$id" "$round" baton "$baton_args"
            run_one "$id" "$round" redis "$redis_args"
        else
            run_one "$id" "$round" redis "$redis_args"
            run_one "$id" "$round" baton "$baton_args"
        fi
    done
    # Durability: forward in odd rounds, backward in even ones.
    if (( round % 2 )); then
        for spec in "${DUR[@]}"; do run_dur "$round" "$spec"; done
    else
        for (( i = ${#DUR[@]} - 1; i >= 0; i-- )); do run_dur "$round" "${DUR[i]}"; done
    fi
done

mkdir -p "$OUT_DIR"
DAY=$(date +%F)
NAME=$DAY
# A later run on the same day does not overwrite an earlier one: -b, -c, ...
for suffix in b c d e f g h i j k l m n o p q r s t u v w x y z; do
    [[ -e "$OUT_DIR/$NAME.md" ]] || break
    NAME=$DAY-$suffix
done
MD="$OUT_DIR/$NAME.md"
SVG="$OUT_DIR/$NAME.svg"
ROWS_FILE="$WORK/rows.txt"
printf '%s\n' "${ROWS[@]}" >"$ROWS_FILE"
DUR_FILE="$WORK/dur.txt"
printf '%s\n' "${DUR[@]}" >"$DUR_FILE"
DUR_FS="$(df -T "$DUR_BASE" | awk 'NR==2 {print $2 " on " $1}')"
ELAPSED=$(( $(date +%s) - STARTED ))

python3 - "$RESULTS" "$ROWS_FILE" "$MD" "$SVG" "$ROUNDS" "$DURATION" "$CONNS" \
    "$(redis-server --version | head -n1)" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    "$(nproc)" "$(uname -sr)" "$(cut -d' ' -f1-3 /proc/loadavg)" \
    "$DUR_FILE" "$DUR_CONNS" "$DUR_FS" "$ELAPSED" <<'PY'
import json, sys, statistics, html, os

(res_path, rows_path, md_path, svg_path, rounds, duration, conns, redis_ver, rev, ncpu, kernel,
 load, dur_path, dur_conns, dur_fs, elapsed) = sys.argv[1:17]
rows = []
for line in open(rows_path):
    line = line.rstrip("\n")
    if line:
        rid, title, _a, _b = line.split("|")
        rows.append((rid, title, "ops_per_sec"))
        if rid.startswith("hot"):
            retry = title.split("retry ")[1].split(" (")[0]
            rows.append((rid, f"hot key, retry {retry}: hand-offs to another client/s (re-grants left out)", "handoffs_per_sec"))
durs = []
for line in open(dur_path):
    line = line.rstrip("\n")
    if line:
        did, dtitle, dserver, dflags, _args = line.split("|")
        durs.append((did, dtitle, dserver, dflags))
runs = {}
for line in open(res_path):
    rec = json.loads(line)
    runs.setdefault((rec["row"], rec["server"]), {})[rec["round"]] = rec["result"]

def mmm(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return (min(vals), statistics.median(vals), max(vals))

def fmt(t, nd=0):
    if t is None:
        return "n/a"
    return " / ".join(f"{v:,.{nd}f}" for v in t)

def field(row, server, key):
    out = {}
    for rnd, r in runs.get((row, server), {}).items():
        if not r.get("failed") and r.get(key) is not None:
            out[rnd] = r[key]
    return out

lines = []
lines.append(f"# baton vs Redis, {os.path.basename(md_path)[:-3]}")
lines.append("")
lines.append(f"Produced by `benches/compare.sh --rounds {rounds} --duration {duration} --connections {conns}` "
             f"at baton `{rev}`, against {redis_ver.split(' sha=')[0]} "
             f"(`--save '' --appendonly no`); baton with `--persistence off` (durability rows: see "
             f"below). Both on loopback. The whole run took {int(elapsed) // 60} min {int(elapsed) % 60} s.")
lines.append(f"Machine: {ncpu} cores, {kernel}, load average at the end {load}. The cores are shared "
             "with other work (compilers of other engineers ran at the same time), so the "
             "numbers are noisy: read the medians and the per-round ratios, not single runs.")
lines.append("")
lines.append("Each cell is min / median / max over the rounds; the two servers alternate "
             "inside each round and the ratio is baton/Redis taken per round. Ops are PINGs, "
             "completed acquire+release cycles, or grants (hot key). Latency is per op from "
             "batch send to reply (cycles: acquire send to release reply); for the hot key it "
             "is the hand-off, from one client sending its release to the next client reading its grant. "
             "CPU is the server process's user+sys time per request (/proc/PID/stat).")
lines.append("")
lines.append("| row | baton ops/s | Redis ops/s | ratio baton/Redis | baton p50 / p99 µs (median) | Redis p50 / p99 µs (median) | CPU µs/req baton / Redis (median) | baton release |")
lines.append("|---|---|---|---|---|---|---|---|")
chart = []
for rid, title, metric in rows:
    b = field(rid, "baton", metric)
    r = field(rid, "redis", metric)
    ratios = [b[k] / r[k] for k in b if k in r and r[k] > 0]
    rt = mmm(ratios)
    def med(server, key):
        v = list(field(rid, server, key).values())
        return statistics.median(v) if v else None
    def lat(server):
        a, c = med(server, "p50_us"), med(server, "p99_us")
        return "n/a" if a is None else f"{a:,.0f} / {c:,.0f}"
    def cpu(server):
        v = med(server, "server_cpu_us_per_request")
        return "n/a" if v is None else f"{v:.2f}"
    rel = sorted({x for x in field(rid, "baton", "release").values() if x != "none"})
    lines.append(f"| {title} | {fmt(mmm(b.values()))} | {fmt(mmm(r.values()))} | {fmt(rt, 2)} | "
                 f"{lat('baton')} | {lat('redis')} | {cpu('baton')} / {cpu('redis')} | {', '.join(rel) or '-'} |")
    # The two hot-key grant rows differ only late in their titles: label them by retry.
    label = title
    if rid.startswith("hot") and metric == "ops_per_sec":
        label = "hot key, retry " + title.split("retry ")[1].split(" (")[0] + ": grants/s"
    chart.append((rid, label, rt))
def ok_runs(row, server):
    return [r for r in runs.get((row, server), {}).values() if not r.get("failed") and r.get("ops")]
lines.append("")
lines.append("Hot key: a hand-off is timed from the releasing client sending its release to the next "
             "client reading its grant (one round trip at best). Redis's hand-off depends on when "
             "the next poller happens to ask: with 64 clients polling one often asks within tens of "
             "µs, but the tail reaches the poll interval.")
for hid, retry in (("hot", "10 ms"), ("hot100", "100 ms")):
    hot_r = ok_runs(hid, "redis")
    hot_b = ok_runs(hid, "baton")
    if hot_r:
        share = statistics.median(r.get("self_regrants", 0) / r["ops"] for r in hot_r)
        ho_r = statistics.median(r.get("handoffs_per_sec", 0) for r in hot_r)
        ho_b = statistics.median(r.get("handoffs_per_sec", 0) for r in hot_b) if hot_b else 0
        lines.append("")
        lines.append(f"Hot key on Redis, retry {retry}: in a median {share:.0%} of the grants the client "
                     "that had just released took the key straight back (its next SET NX came before any "
                     "poller's), so Redis's grants/s includes barging that baton's FIFO queue never allows; "
                     "those re-grants are left out of the hand-off latency. Hand-offs to another client "
                     f"per second (median): baton {ho_b:,.0f}, Redis {ho_r:,.0f}.")
rel_r = sorted({x for row, _, _ in rows for x in field(row, "redis", "release").values() if x != "none"})
lines.append("")
lines.append("Redis releases with " + (", ".join(rel_r) or "-") + "; the last column says which "
             "compare-and-delete baton used in the redlock-cycle row (run with `--release evalsha`, so "
             "a baton without working SCRIPT LOAD/EVALSHA fails the row instead of falling back to "
             "`DELIFEQ`).")

# Durability: each configuration on its own fresh server and data directory.
def dfield(did, key):
    return field("dur:" + did, "dur", key)
def dratio(a, b):
    x, y = dfield(a, "ops_per_sec"), dfield(b, "ops_per_sec")
    return mmm([x[k] / y[k] for k in x if k in y and y[k] > 0])
def dmed(did, key):
    v = list(dfield(did, key).values())
    return statistics.median(v) if v else None
lines.append("")
lines.append(f"## Durability: uncontended lock cycles, {dur_conns} connections, P=1")
lines.append("")
lines.append("baton runs native-cycle (LOCK + UNLOCK, both logged), Redis redlock-cycle (SET NX PX + "
             "EVALSHA release, both in the AOF). Every configuration is a server of its own, started "
             f"for its run with a fresh `--dir` ({dur_fs}) and stopped after it; in each round the six "
             "run one after another, forward in odd rounds and backward in even ones. Ratios are per "
             "round. CPU is user+sys of the server process (all its threads) per request; write-back "
             "the kernel does on its own threads (`everysec`, `no`) is not in it.")
lines.append("")
lines.append("| configuration | ops/s (cycles) | vs Redis always | vs Redis everysec | vs baton off | p50 / p99 µs (median) | CPU µs/req (median) |")
lines.append("|---|---|---|---|---|---|---|")
for did, dtitle, dserver, _f in durs:
    o = dfield(did, "ops_per_sec")
    a, c = dmed(did, "p50_us"), dmed(did, "p99_us")
    cpu = dmed(did, "server_cpu_us_per_request")
    rel = lambda ref: "-" if ref == did else fmt(dratio(did, ref), 2)
    lines.append(f"| {dtitle} | {fmt(mmm(o.values()))} | {rel('r-always')} | "
                 f"{rel('r-everysec')} | {rel('b-off')} | "
                 + ("n/a" if a is None else f"{a:,.0f} / {c:,.0f}") + " | "
                 + ("n/a" if cpu is None else f"{cpu:.2f}") + " |")
g1, g2 = dratio("b-always", "r-always"), dratio("b-always", "b-off")
lines.append("")
def verdict(t, goal):
    if t is None:
        return "n/a"
    return ("met" if t[1] >= goal else "missed") + f" (median {t[1]:.2f}, min {t[0]:.2f}, max {t[2]:.2f})"
lines.append(f"Goals for `--appendfsync always` at {dur_conns} clients: at least Redis's `always` "
             f"(ratio >= 1.0): {verdict(g1, 1.0)}; at least 30% of baton in memory (ratio >= 0.30): "
             f"{verdict(g2, 0.30)}.")
for a, b, t in (("b-always", "r-always", "durability: baton always vs Redis always"),
                ("b-everysec", "r-everysec", "durability: baton everysec vs Redis everysec")):
    chart.append(("dur:" + a, t, dratio(a, b)))
failed = sum(1 for d in runs.values() for r in d.values() if r.get("failed"))
lines.append("")
if failed:
    lines.append(f"{failed} run(s) failed and are left out.")
    lines.append("")
lines.append(f"Chart: [{os.path.basename(svg_path)}]({os.path.basename(svg_path)}) (median ratio, whiskers min..max, line at 1.0).")
lines.append("")
open(md_path, "w").write("\n".join(lines))

# SVG: one horizontal bar per row, median ratio baton/Redis, min..max whisker.
W, left, right, top, bar_h, gap = 900, 330, 40, 50, 26, 14
H = top + len(chart) * (bar_h + gap) + 50
# Axis capped at 4x so one huge ratio does not squash the rest; longer bars are clipped
# (their label still gives the real median, marked with ">").
CAP = 4.0
vmax = min(max([t[2] for _, _, t in chart if t] + [1.0]) * 1.1, CAP * 1.1)
scale = (W - left - right) / vmax
x = lambda v: left + min(v, CAP) * scale
s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="13">',
     f'<rect width="{W}" height="{H}" fill="white"/>',
     f'<text x="{W/2}" y="24" text-anchor="middle" font-size="16">baton / Redis throughput ratio (median of {rounds} rounds; &gt;1 = baton faster)</text>']
for i, (rid, title, t) in enumerate(chart):
    y = top + i * (bar_h + gap)
    label = html.escape(title if len(title) <= 48 else title[:46] + "…")
    s.append(f'<text x="{left - 8}" y="{y + bar_h * 0.68}" text-anchor="end">{label}</text>')
    if t is None:
        s.append(f'<text x="{left + 4}" y="{y + bar_h * 0.68}">n/a</text>')
        continue
    lo, md, hi = t
    color = "#3b7dd8" if md >= 1 else "#d8703b"
    s.append(f'<rect x="{left}" y="{y}" width="{min(md, CAP) * scale:.1f}" height="{bar_h}" fill="{color}"/>')
    cy = y + bar_h / 2
    s.append(f'<line x1="{x(lo):.1f}" y1="{cy}" x2="{x(hi):.1f}" y2="{cy}" stroke="black"/>')
    for v in (lo, hi):
        s.append(f'<line x1="{x(v):.1f}" y1="{cy - 6}" x2="{x(v):.1f}" y2="{cy + 6}" stroke="black"/>')
    mark = "&gt; " if md > CAP else ""
    s.append(f'<text x="{x(max(hi, md)) + 6:.1f}" y="{y + bar_h * 0.68}">{mark}{md:.2f}</text>')
axis_y = top + len(chart) * (bar_h + gap)
s.append(f'<line x1="{x(1):.1f}" y1="{top - 8}" x2="{x(1):.1f}" y2="{axis_y}" stroke="#444" stroke-dasharray="4 3"/>')
s.append(f'<line x1="{left}" y1="{axis_y}" x2="{W - right}" y2="{axis_y}" stroke="black"/>')
step = 0.5 if vmax <= 4 else (1 if vmax <= 10 else 5)
v = 0.0
while v <= vmax:
    s.append(f'<line x1="{x(v):.1f}" y1="{axis_y}" x2="{x(v):.1f}" y2="{axis_y + 5}" stroke="black"/>')
    s.append(f'<text x="{x(v):.1f}" y="{axis_y + 20}" text-anchor="middle">{v:g}</text>')
    v += step
s.append("</svg>")
open(svg_path, "w").write("\n".join(s) + "\n")
print("\n".join(lines))
PY
echo "wrote $MD and $SVG"
