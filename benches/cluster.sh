#!/usr/bin/env bash
# Durable lock cycles/s and p99 of a 3-node baton cluster, a single-node baton and a
# 3-node etcd cluster, on this machine (issue 17).
#
# Starts every system on loopback with its data on disk (under target/, not a tmpfs),
# each durable by default: baton with --appendfsync always (one fsync per batch), the
# cluster committing each entry on a majority; etcd 3 members (Debian's etcd-server,
# installed when missing; WAL fsync per raft batch). Then, for several rounds, runs the
# lock cycle at each client count on each system, rotating which system goes first from
# round to round, and writes benches/results/cluster-YYYY-MM-DD.md (min / median / max
# over the rounds of cycles/s and of p99, plus the ratio 3-node baton / 3-node etcd).
# Stops what it started on exit.
#
# A cycle is acquire + release of one lock on a random name among 1M, with the latency
# from the acquire's send to the release's reply: on baton `LOCK key owner 10000` +
# `UNLOCK key owner` (target/release/baton-bench -w native-cycle -P 1); on etcd the
# concurrency recipe's txn (create-if-absent with the client's lease) + delete
# (benches/etcd-load, built with its own Cargo.lock; --etcd-mode lock-rpc uses etcd's v3
# Lock/Unlock service instead). Clients talk to the leader of each cluster (baton's
# followers forward and etcd's members proxy to the leader; --to-followers sends each
# client count's clients to a follower instead).
#
# Usage: benches/cluster.sh [--rounds N] [--duration SECONDS] [--clients "1 8 32"]
#                           [--systems "baton3 baton1 etcd3"] [--base-port P]
#                           [--etcd-mode recipe|lock-rpc] [--to-followers]
#                           [--out DIR] [--no-build]
# Defaults: 3 rounds of 5 s per run: 3 systems x 3 client counts x 3 rounds, about 2
# minutes plus the builds. Ports: base+1..+3 (baton cluster clients), +11..+13 (its
# peers), +20 (single baton), +31..+33 / +41..+43 (etcd clients / peers); base 7600.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ROUNDS=3
DURATION=5
CLIENTS="1 8 32"
SYSTEMS="baton3 baton1 etcd3"
BASE=7600
ETCD_MODE=recipe
TO_FOLLOWERS=0
OUT_DIR=benches/results
BUILD=1

while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --clients) CLIENTS="$2"; shift 2 ;;
        --systems) SYSTEMS="$2"; shift 2 ;;
        --base-port) BASE="$2"; shift 2 ;;
        --etcd-mode) ETCD_MODE="$2"; shift 2 ;;
        --to-followers) TO_FOLLOWERS=1; shift ;;
        *) bench_common_arg "$@"; shift "$SHIFT_BY" ;;
    esac
done

bench_setup baton-bench
BENCH=target/release/baton-bench
ETCD_LOAD=target/etcd-load/release/etcd-load

need_pkg() { # need_pkg COMMAND PACKAGE: installs PACKAGE from Debian when COMMAND is missing
    if ! command -v "$1" >/dev/null; then
        if [[ $(id -u) -ne 0 ]]; then
            echo "$SCRIPT: $1 missing and not root to install $2" >&2
            exit 1
        fi
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y "$2"
    fi
}
if [[ " $SYSTEMS " == *" etcd3 "* ]]; then
    need_pkg etcd etcd-server
    need_pkg etcdctl etcd-client
    if [[ $BUILD -eq 1 ]]; then
        need_pkg protoc protobuf-compiler
        cargo build --release --manifest-path benches/etcd-load/Cargo.toml \
            --target-dir target/etcd-load
    fi
fi
if [[ " $SYSTEMS " == *" baton3 "* ]] && ! "$BATON" --help | grep -q -- '--node-id'; then
    echo "$SCRIPT: this baton has no cluster mode (--node-id); drop baton3 from --systems" >&2
    exit 1
fi

mkdir -p target
WORK=$(mktemp -d "$PWD/target/cluster-bench.XXXXXX")
PIDS=()
STARTED=$(date +%s)
cleanup() {
    bench_stop "${PIDS[@]}"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- start the systems -------------------------------------------------------------------
B3_PORTS=($((BASE + 1)) $((BASE + 2)) $((BASE + 3)))
B1_PORT=$((BASE + 20))
E_CLIENT=($((BASE + 31)) $((BASE + 32)) $((BASE + 33)))
E_PEER=($((BASE + 41)) $((BASE + 42)) $((BASE + 43)))

if [[ " $SYSTEMS " == *" baton1 "* ]]; then
    mkdir -p "$WORK/b1"
    "$BATON" --port "$B1_PORT" --dir "$WORK/b1" >"$WORK/baton1.log" 2>&1 &
    PIDS+=($!)
    wait_up "$B1_PORT"
fi

if [[ " $SYSTEMS " == *" baton3 "* ]]; then
    PEERS="1=127.0.0.1:$((BASE + 11)),2=127.0.0.1:$((BASE + 12)),3=127.0.0.1:$((BASE + 13))"
    for i in 1 2 3; do
        mkdir -p "$WORK/b3-$i"
        "$BATON" --node-id "$i" --peers "$PEERS" --port "${B3_PORTS[i - 1]}" \
            --dir "$WORK/b3-$i" >"$WORK/baton3-$i.log" 2>&1 &
        PIDS+=($!)
    done
    for p in "${B3_PORTS[@]}"; do wait_up "$p"; done
fi

if [[ " $SYSTEMS " == *" etcd3 "* ]]; then
    CLUSTER="e1=http://127.0.0.1:${E_PEER[0]},e2=http://127.0.0.1:${E_PEER[1]},e3=http://127.0.0.1:${E_PEER[2]}"
    for i in 1 2 3; do
        c=${E_CLIENT[i - 1]} p=${E_PEER[i - 1]}
        etcd --name "e$i" --data-dir "$WORK/e$i" \
            --listen-client-urls "http://127.0.0.1:$c" --advertise-client-urls "http://127.0.0.1:$c" \
            --listen-peer-urls "http://127.0.0.1:$p" --initial-advertise-peer-urls "http://127.0.0.1:$p" \
            --initial-cluster "$CLUSTER" --initial-cluster-token baton-bench \
            --initial-cluster-state new --logger zap --log-outputs stderr \
            >"$WORK/etcd-$i.log" 2>&1 &
        PIDS+=($!)
    done
    E_ALL="http://127.0.0.1:${E_CLIENT[0]},http://127.0.0.1:${E_CLIENT[1]},http://127.0.0.1:${E_CLIENT[2]}"
    for i in $(seq 100); do
        if etcdctl --endpoints "$E_ALL" endpoint health >/dev/null 2>&1; then break; fi
        if [[ $i -eq 100 ]]; then echo "$SCRIPT: etcd did not come up" >&2; cat "$WORK"/etcd-*.log >&2; exit 1; fi
        sleep 0.2
    done
fi

# baton_target_port: the client port of the baton cluster's leader (or of a follower with
# --to-followers).
baton_target_port() {
    local p role
    for i in $(seq 150); do
        for p in "${B3_PORTS[@]}"; do
            role=$(redis-cli -p "$p" INFO replication 2>/dev/null | tr -d '\r' | sed -n 's/^role://p')
            if [[ $role == leader && $TO_FOLLOWERS -eq 0 ]] || [[ $role == follower && $TO_FOLLOWERS -eq 1 ]]; then
                echo "$p"; return 0
            fi
        done
        sleep 0.1
    done
    echo "$SCRIPT: the baton cluster has no leader" >&2
    cat "$WORK"/baton3-*.log >&2
    exit 1
}

# etcd_target: the client URL of etcd's leader (or of a follower with --to-followers).
etcd_target() {
    etcdctl --endpoints "$E_ALL" endpoint status -w json | python3 -c '
import json, sys
want_leader = sys.argv[1] == "0"
for e in json.load(sys.stdin):
    s = e["Status"]
    if (s["header"]["member_id"] == s["leader"]) == want_leader:
        print(e["Endpoint"]); break
' "$TO_FOLLOWERS"
}

RESULTS="$WORK/results.jsonl"
: >"$RESULTS"

run_one() {
    local system=$1 clients=$2 round=$3 line target
    case $system in
        baton1)
            line=$("$BENCH" --port "$B1_PORT" -w native-cycle -P 1 -c "$clients" -d "$DURATION" \
                --ttl-ms 10000 --label baton1 | tail -n 1) || line='{"failed":true}' ;;
        baton3)
            target=$(baton_target_port)
            line=$("$BENCH" --port "$target" -w native-cycle -P 1 -c "$clients" -d "$DURATION" \
                --ttl-ms 10000 --label baton3 | tail -n 1) || line='{"failed":true}' ;;
        etcd3)
            target=$(etcd_target)
            line=$("$ETCD_LOAD" --endpoints "$target" -c "$clients" -d "$DURATION" \
                --mode "$ETCD_MODE" --label etcd3 | tail -n 1) || line='{"failed":true}' ;;
    esac
    printf '{"system":"%s","clients":%d,"round":%d,"result":%s}\n' \
        "$system" "$clients" "$round" "$line" >>"$RESULTS"
    echo "  round $round $system c=$clients: $line"
}

read -r -a SYS <<<"$SYSTEMS"
for round in $(seq "$ROUNDS"); do
    echo "round $round/$ROUNDS"
    n=${#SYS[@]}
    for c in $CLIENTS; do
        # Rotate the order of the systems from round to round (and per client count),
        # so that drift in machine load favours none of them.
        for k in $(seq 0 $((n - 1))); do
            run_one "${SYS[$(((k + round + c) % n))]}" "$c" "$round"
        done
    done
done

mkdir -p "$OUT_DIR"
DAY=$(date +%F)
NAME=cluster-$DAY
for suffix in b c d e f g h i j k l m n o p q r s t u v w x y z; do
    [[ -e "$OUT_DIR/$NAME.md" ]] || break
    NAME=cluster-$DAY-$suffix
done
MD="$OUT_DIR/$NAME.md"
FS="$(df -T "$WORK" | awk 'NR==2 {print $2}')"
ELAPSED=$(( $(date +%s) - STARTED ))
ETCD_VER=$( (etcd --version 2>/dev/null || true) | head -n1)
python3 - "$RESULTS" "$MD" "$ROUNDS" "$DURATION" "$ETCD_MODE" "$TO_FOLLOWERS" \
    "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$(nproc)" "$(uname -sr)" \
    "$FS" "$ELAPSED" "$ETCD_VER" "$CLIENTS" "$SYSTEMS" <<'PY'
import json, sys, statistics

(res, md, rounds, duration, etcd_mode, to_followers, rev, ncpu, kernel, fs, elapsed,
 etcd_ver, clients, systems) = sys.argv[1:15]
runs = {}
for line in open(res):
    r = json.loads(line)
    runs.setdefault((r["system"], r["clients"]), []).append(r["result"])

def stats(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "failed"
    return f"{min(vals):,.0f} / {statistics.median(vals):,.0f} / {max(vals):,.0f}"

names = {"baton3": "baton, 3 nodes", "baton1": "baton, 1 node", "etcd3": "etcd, 3 nodes"}
out = [f"# Cluster benchmark {md.rsplit('/', 1)[-1][:-3]}", "",
       "Durable lock cycles (acquire + release, random name among 1M, one cycle at a time "
       "per client) by `benches/cluster.sh`: baton `LOCK`+`UNLOCK` via `baton-bench -w "
       f"native-cycle -P 1`; etcd via `benches/etcd-load --mode {etcd_mode}`. "
       + ("Clients talk to a follower. " if to_followers == "1" else "Clients talk to the leader. ")
       + f"{rounds} rounds of {duration} s per run, order rotated per round; each cell is "
       "min / median / max over the rounds.", "",
       f"Revision {rev}, {ncpu} cores, {kernel}, data on {fs}, {etcd_ver}, {elapsed} s in all.", "",
       "| system | clients | cycles/s | p99 µs | errors (sum) |", "|---|---|---|---|---|"]
for c in clients.split():
    for s in systems.split():
        rs = runs.get((s, int(c)), [])
        ops = [r.get("ops_per_sec") for r in rs if not r.get("failed")]
        p99 = [r.get("p99_us") for r in rs if not r.get("failed")]
        errs = sum(r.get("errors", 0) for r in rs if not r.get("failed"))
        failed = sum(1 for r in rs if r.get("failed"))
        note = f" ({failed} runs failed)" if failed else ""
        out.append(f"| {names.get(s, s)} | {c} | {stats(ops)}{note} | {stats(p99)} | {errs} |")
if "baton3" in systems.split() and "etcd3" in systems.split():
    out += ["", "| clients | median cycles/s, 3-node baton / 3-node etcd |", "|---|---|"]
    for c in clients.split():
        b = [r["ops_per_sec"] for r in runs.get(("baton3", int(c)), []) if not r.get("failed")]
        e = [r["ops_per_sec"] for r in runs.get(("etcd3", int(c)), []) if not r.get("failed")]
        if b and e:
            out.append(f"| {c} | {statistics.median(b) / statistics.median(e):.1f}x |")
open(md, "w").write("\n".join(out) + "\n")
print("\n".join(out))
print(f"\nwritten to {md}")
PY
