#!/usr/bin/env bash
# selftest/interop/qperf.sh — unmodified qperf tcp_bw and tcp_lat in the
# three setups. qperf talks over two connections: the control connection to
# the listen port (-lp) and, per test, a data connection to a second port
# the server listens on (-ip, fixed here so that the log can be checked for
# both ports).
# Data check: qperf reports a positive bandwidth and a finite latency for
# each test, and the persistent server survives both tests.
. "$(dirname "$0")/lib.sh"
fl_init qperf
fl_need qperf

DUR=${QPERF_SECONDS:-1}

# check_out OUTPUT — "tcp_bw: bw = N unit" and "tcp_lat: latency = N unit".
check_out() {
    awk '
    /^tcp_bw:/  { t = "bw" }
    /^tcp_lat:/ { t = "lat" }
    t == "bw"  && $1 == "bw"      { bw = $3; bwu = $4 }
    t == "lat" && $1 == "latency" { lat = $3; latu = $4 }
    END {
        gsub(/,/, "", bw); gsub(/,/, "", lat)
        printf "tcp_bw=%s %s tcp_lat=%s %s", bw, bwu, lat, latu
        ok = (bw + 0 > 0) && (bwu ~ /B\/sec$/) && (lat + 0 > 0) && (latu == "us" || latu == "ns" || (latu == "ms" && lat + 0 < 100))
        exit !ok
    }' "$1"
}

scenario() {
    local spid out res
    fl_newport PORT
    fl_newport DPORT
    fl_bg qperf-s "$SRV" qperf -lp "$PORT"
    spid=$FL_LAST_PID
    fl_wait_listen "$PORT" "$spid" || return
    out=$FL_TMP/$FL_PHASE.client.out
    if ! fl_run "$CLI" $((4 * DUR + 20)) qperf 127.0.0.1 -lp "$PORT" -ip "$DPORT" -t "$DUR" tcp_bw tcp_lat > "$out" 2>&1; then
        fl_fail "qperf client exited non-zero"; cat "$out"; fl_show_outputs
    elif res=$(check_out "$out"); then
        fl_say "[$FL_PHASE] $res"
    else
        fl_fail "qperf output not sane: $res"; cat "$out"
    fi
    kill -0 "$spid" 2>/dev/null || { fl_fail "qperf server died"; fl_show_outputs; }
}

fl_matrix scenario
fl_finish
