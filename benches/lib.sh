# benches/lib.sh: what compare.sh and scenarios.sh share; sourced by both, not run.
#
# The options both take (bench_common_arg), the build and the Redis install
# (bench_setup), and starting, waiting for and stopping servers (bench_redis, wait_up,
# bench_stop). The sourcing script keeps its own defaults and options; it owns the
# variables these functions set or read: BATON_PORT, REDIS_PORT, OUT_DIR, BUILD (set by
# the options), BATON (set by bench_setup) and WORK (its temp dir, where the server logs
# go).

# The script's name, for messages.
SCRIPT=$(basename "$0")

# bench_usage: prints the script's header comment (from line 2 to the first line that is
# not a comment), which is its usage.
bench_usage() {
    awk 'NR > 1 { if (!/^#/) exit; print }' "$0"
}

# bench_common_arg ARGS...: handles an option both scripts take at the front of ARGS and
# sets SHIFT_BY to the number of words it used; exits on an unknown option. The script's
# own parser calls it for every option it does not know itself:
#     *) bench_common_arg "$@"; shift "$SHIFT_BY" ;;
bench_common_arg() {
    case "$1" in
        --baton-port) BATON_PORT="$2"; SHIFT_BY=2 ;;
        --redis-port) REDIS_PORT="$2"; SHIFT_BY=2 ;;
        --out) OUT_DIR="$2"; SHIFT_BY=2 ;;
        --no-build) BUILD=0; SHIFT_BY=1 ;;
        -h|--help) bench_usage; exit 0 ;;
        *) echo "$SCRIPT: unknown argument $1" >&2; exit 2 ;;
    esac
}

# bench_setup TOOL: moves to the repository root, builds baton and the TOOL binary (of
# the workspace's baton-bench package, bench/) in release (unless --no-build), sets BATON, and installs Redis from the distribution's
# packages when redis-server or redis-cli is missing (the machine runs as root).
bench_setup() {
    cd "$(dirname "$0")/.."
    if [[ $BUILD -eq 1 ]]; then
        cargo build --release -p baton --bin baton -p baton-bench --bin "$1"
    fi
    BATON=target/release/baton
    if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
        if [[ $(id -u) -ne 0 ]]; then
            echo "$SCRIPT: redis-server/redis-cli missing and not root to install them" >&2
            exit 1
        fi
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server redis-tools
    fi
}

# bench_redis PORT LOG [FLAGS...]: starts redis-server in the background on loopback PORT,
# in the foreground mode (so that $! is its PID afterwards) and without RDB snapshots,
# plus FLAGS; its output is appended to LOG. Every Redis of both scripts starts here, so
# they all run with the same settings.
bench_redis() {
    local port=$1 log=$2
    shift 2
    redis-server --port "$port" --bind 127.0.0.1 --save '' "$@" --daemonize no >>"$log" 2>&1 &
}

# wait_up PORT: waits up to 10 s for the server on PORT to answer PING; if it does not,
# shows the server logs in WORK and exits.
wait_up() {
    local port=$1 i
    for i in $(seq 100); do
        if [[ $(redis-cli -p "$port" PING 2>/dev/null) == PONG ]]; then return 0; fi
        sleep 0.1
    done
    echo "$SCRIPT: server on port $port did not come up" >&2
    cat "$WORK"/*.log >&2
    exit 1
}

# bench_stop PID...: stops servers this script started, by their PIDs (never by name):
# SIGTERM to each, then waits for each. Empty arguments and PIDs already gone are fine.
bench_stop() {
    local pid
    for pid in "$@"; do
        if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; fi
    done
    for pid in "$@"; do
        if [[ -n $pid ]]; then wait "$pid" 2>/dev/null || true; fi
    done
}
