#!/usr/bin/env bash
# bench/setup-ab.sh — connection setup A/B, interleaved: plain TCP against
# fastloop with FASTLOOP_SWITCH_AFTER=8 (the default: a server switches a
# connection once it made 8 data calls; the setting "default" below) and
# against the switch in accept() (FASTLOOP_SWITCH_AFTER=0, the setting
# "accept").  Rows per round, in turn: netperf TCP_CRR
# (a fixed count of transactions), bench/micro/crr (connect, 1 B, 1 B,
# close), nginx + wrk with "Connection: close".  Prints each run, then the
# median per row and setting and its ratio to TCP.  Both ends of every
# pair run under the same setting; logging off (what users run).
#
#   bench/setup-ab.sh [ROUNDS (5)] [SECONDS per wrk run (3)]
#
# Needs: make (the library), build/bench/crr (make bench builds it),
# netperf (scripts/build-netperf), nginx, wrk.  Loopback only; every
# server is stopped by its pid.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${1:-5}
SECS=${2:-3}
LIB=$ROOT/build/libfastloop.so
NP=$ROOT/build/third_party/netperf/bin
CRR=$ROOT/build/bench/crr
N=20000
for x in "$LIB" "$NP/netperf" "$NP/netserver" "$CRR"; do
    [ -x "$x" ] || [ -r "$x" ] || { echo "setup-ab: missing $x (make; make bench; scripts/build-netperf)"; exit 2; }
done
for c in nginx wrk ss; do
    command -v "$c" >/dev/null || { echo "setup-ab: needs $c"; exit 2; }
done
TMP=$(mktemp -d /tmp/fastloop-setup-ab.XXXXXX) || exit 2
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT
mkdir -p "$TMP/www" "$TMP/reg"
chmod 700 "$TMP/reg"
head -c 1024 /dev/urandom >"$TMP/www/1k.bin"
chmod -R a+rX "$TMP/www"
# free_port (FREE_PORT), wait_listen, write_nginx_conf: shared with bench/run.sh
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
setting_env() { # SETTING -> the environment of both ends
    case $1 in
        tcp) echo "FASTLOOP_UNUSED=1" ;;
        default) echo "LD_PRELOAD=$LIB FASTLOOP_DIR=$TMP/reg FASTLOOP_SWITCH_AFTER=8" ;;
        accept) echo "LD_PRELOAD=$LIB FASTLOOP_DIR=$TMP/reg FASTLOOP_SWITCH_AFTER=0" ;;
    esac
}
stop_last() {
    local p=${PIDS[-1]}
    kill "$p" 2>/dev/null; wait "$p" 2>/dev/null
    unset 'PIDS[-1]'
}

run_netperf() { # SETTING
    local e port r
    e=$(setting_env "$1"); free_port || { echo "n/a"; return; }; port=$FREE_PORT
    env $e "$NP/netserver" -D -L 127.0.0.1 -p "$port" >/dev/null 2>&1 &
    PIDS+=($!)
    wait_listen "$port" "${PIDS[-1]}" 5 || { stop_last; echo "n/a"; return; }
    r=$(env $e timeout 120 "$NP/netperf" -H 127.0.0.1 -p "$port" -l -$N -t TCP_CRR -P 0 -v 0 -- -p "$(crr_ports)" 2>&1 | tail -n 1 | awk '{print $1}')
    stop_last
    echo "${r:-n/a}"
}
run_crr() { # SETTING
    env $(setting_env "$1") timeout 120 "$CRR" run -n $N 2>&1 | awk '/^conns/ { print $6 }'
}
run_nginx() { # SETTING
    local e port r
    e=$(setting_env "$1"); free_port || { echo "n/a"; return; }; port=$FREE_PORT
    write_nginx_conf "$TMP" "$port"
    env $e nginx -c "$TMP/nginx.conf" -p "$TMP" >/dev/null 2>&1 &
    PIDS+=($!)
    wait_listen "$port" "${PIDS[-1]}" 5 || { stop_last; echo "n/a"; return; }
    r=$(env $e timeout $((SECS + 30)) wrk -t 2 -c 10 -d "${SECS}s" -H "Connection: close" \
        "http://127.0.0.1:$port/1k.bin" 2>&1 | awk '/Requests\/sec/ { print $2 }')
    stop_last
    echo "${r:-n/a}"
}

ROWS="netperf crr nginx"
SETTINGS="tcp default accept"
declare -A VALS
echo "setup-ab: $ROUNDS rounds; netperf TCP_CRR -l -$N, crr -n $N, wrk -c 10 -d ${SECS}s Connection: close"
for r in $(seq "$ROUNDS"); do
    for row in $ROWS; do
        for s in $SETTINGS; do
            v=$(run_$row "$s")
            VALS[$row.$s]="${VALS[$row.$s]:-} $v"
            printf 'round %d  %-7s %-8s %s\n' "$r" "$row" "$s" "$v"
        done
    done
done
median() { tr ' ' '\n' | grep -E '^[0-9.]+$' | sort -g | awk '{ a[NR] = $1 } END { if (NR) print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2); else print "n/a" }'; }
echo
printf '| row | TCP | fastloop SWITCH_AFTER=8 | ÷ TCP | fastloop switch in accept | ÷ TCP |\n|---|---:|---:|---:|---:|---:|\n'
for row in $ROWS; do
    t=$(echo "${VALS[$row.tcp]}" | median)
    d=$(echo "${VALS[$row.default]}" | median)
    a=$(echo "${VALS[$row.accept]}" | median)
    awk -v row="$row" -v t="$t" -v d="$d" -v a="$a" 'BEGIN {
        printf "| %s (per s, median of rounds) | %.0f | %.0f | %.2f× | %.0f | %.2f× |\n", row, t, d, (t > 0 ? d / t : 0), a, (t > 0 ? a / t : 0) }'
done
