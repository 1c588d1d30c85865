#!/usr/bin/env bash
# redis-cli against the first server of INTEROP_PORTS: the lock idiom as an
# operator types it. Prints "test_redis_cli: N passed, N failed".
set -u
HOST="${INTEROP_HOST:-127.0.0.1}"
PORT="${INTEROP_PORTS%%,*}"
[ -n "$PORT" ] || { echo "test_redis_cli: INTEROP_PORTS is not set"; echo "test_redis_cli: 0 passed, 1 failed"; exit 1; }
PASS=0; FAIL=0
# --no-raw: the human-readable reply forms ("OK", "(nil)", "(integer) 1")
# even though stdout is not a terminal.
cli() { timeout 5 redis-cli -h "$HOST" -p "$PORT" --no-raw "$@" 2>&1; }
cli3() { timeout 5 redis-cli -3 -h "$HOST" -p "$PORT" --no-raw "$@" 2>&1; }

check() {  # $1 = name, $2 = expected, $3 = actual
    if [ "$2" = "$3" ]; then PASS=$((PASS + 1)); echo "ok - $1"
    else FAIL=$((FAIL + 1)); echo "not ok - $1: expected [$2], got [$3]"; fi
}
check_true() {  # $1 = name, $2 = detail; call after a test command
    if [ "$3" = 0 ]; then PASS=$((PASS + 1)); echo "ok - $1"
    else FAIL=$((FAIL + 1)); echo "not ok - $1: $2"; fi
}

K="interop:cli:$(date +%s%N):$$"
RELEASE='if redis.call("get",KEYS[1]) == ARGV[1] then return redis.call("del",KEYS[1]) else return 0 end'

check "PING" "PONG" "$(cli PING)"
check "SET NX PX on a free key" "OK" "$(cli SET "$K" token1 NX PX 10000)"
check "second SET NX PX on a held key" "(nil)" "$(cli SET "$K" token2 NX PX 10000)"
check "GET returns the holder's value" '"token1"' "$(cli GET "$K")"

out="$(cli PTTL "$K")"; ms="${out#(integer) }"
[[ "$ms" =~ ^[0-9]+$ ]] && [ "$ms" -gt 0 ] && [ "$ms" -le 10000 ]
check_true "PTTL in (0, 10000]" "got [$out]" $?

check "EVAL release with a wrong value" "(integer) 0" "$(cli EVAL "$RELEASE" 1 "$K" wrong)"
check "EVAL release with the right value" "(integer) 1" "$(cli EVAL "$RELEASE" 1 "$K" token1)"
check "EVAL release again" "(integer) 0" "$(cli EVAL "$RELEASE" 1 "$K" token1)"
check "key gone after release" "(integer) 0" "$(cli EXISTS "$K")"
check "PTTL of a missing key" "(integer) -2" "$(cli PTTL "$K")"

out="$(cli INFO server)"
echo "$out" | grep -q '^redis_version:[0-9]'
check_true "INFO server has redis_version" "got [$(echo "$out" | head -n 3)]" $?

out="$(cli COMMAND COUNT)"
[[ "${out#(integer) }" =~ ^[1-9][0-9]*$ ]]
check_true "COMMAND COUNT is a positive integer" "got [$out]" $?

# RESP3 session (redis-cli -3 sends HELLO 3 first).
check "RESP3: PING" "PONG" "$(cli3 PING)"
check "RESP3: SET NX PX" "OK" "$(cli3 SET "$K" token3 NX PX 10000)"
check "RESP3: GET of a missing key is nil" "(nil)" "$(cli3 GET "$K:missing")"
check "RESP3: EVAL release" "(integer) 1" "$(cli3 EVAL "$RELEASE" 1 "$K" token3)"

echo "test_redis_cli: $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
