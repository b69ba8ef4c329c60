#!/usr/bin/env bash
# selftest/interop/sockperf.sh — unmodified sockperf over TCP in the three
# setups: ping-pong with 64 B and 16 KiB messages (the server waits in
# epoll_wait with a 10 ms timeout, its default), and a throughput run.
# Data check: sockperf numbers every message; the ping-pong summary must show
# a sane number of observations, sent == received in the valid duration,
# no dropped, duplicated or out-of-order message and a finite latency.
. "$(dirname "$0")/lib.sh"
fl_init sockperf
fl_need sockperf

DUR=${SOCKPERF_SECONDS:-1}

# check_pp OUTPUT — parse a ping-pong run's summary.
check_pp() {
    awk '
    { gsub(/\033\[[0-9;]*m/, "") }            # sockperf colours its summary
    /\[Valid Duration\]/ {
        for (i = 1; i <= NF; i++) {
            if ($i ~ /^SentMessages=/)     { split($i, a, "="); sent = a[2] + 0 }
            if ($i ~ /^ReceivedMessages=/) { split($i, a, "="); recv = a[2] + 0 }
        }
    }
    /avg-latency=/ { match($0, /avg-latency=[0-9.]+/); lat = substr($0, RSTART + 12, RLENGTH - 12) + 0; havelat = 1 }
    /# dropped messages/ {
        match($0, /dropped messages = [0-9]+/);      drop = substr($0, RSTART + 19, RLENGTH - 19) + 0
        match($0, /duplicated messages = [0-9]+/);   dup = substr($0, RSTART + 22, RLENGTH - 22) + 0
        match($0, /out-of-order messages = [0-9]+/); ooo = substr($0, RSTART + 24, RLENGTH - 24) + 0
        haveloss = 1
    }
    /Total [0-9]+ observations/ { match($0, /Total [0-9]+/); obs = substr($0, RSTART + 6, RLENGTH - 6) + 0 }
    END {
        err = ""
        if (obs < 100) err = err sprintf(" observations=%d<100", obs)
        if (sent != recv || recv == 0) err = err sprintf(" sent=%d received=%d", sent, recv)
        if (!havelat || lat <= 0 || lat > 100000) err = err sprintf(" avg-latency=%s", lat)
        if (!haveloss || drop + dup + ooo != 0) err = err sprintf(" dropped=%d duplicated=%d out-of-order=%d (line seen: %d)", drop, dup, ooo, haveloss)
        printf "observations=%d sent=%d received=%d avg-latency=%.3fus", obs, sent, recv, lat
        if (err != "") { printf " BAD:%s", err; exit 1 }
    }' "$1"
}

# check_tp OUTPUT — a throughput run reports a positive message count.
check_tp() {
    awk '{ gsub(/\033\[[0-9;]*m/, "") }
    /Total of [0-9]+ messages sent/ { match($0, /Total of [0-9]+/); n = substr($0, RSTART + 9, RLENGTH - 9) + 0 }
    /BandWidth is/ { bw = $0; sub(/.*BandWidth is /, "", bw) }
    END { printf "messages=%d bandwidth=%s", n, bw; exit !(n > 0) }' "$1"
}

scenario() {
    local spid out tag m res
    fl_newport PORT
    fl_bg sockperf-sr "$SRV" sockperf sr --tcp -i 127.0.0.1 -p "$PORT"
    spid=$FL_LAST_PID
    fl_wait_listen "$PORT" "$spid" || return
    for m in 64 16384; do
        tag=pp-$m
        out=$FL_TMP/$FL_PHASE.$tag.out
        if ! fl_run "$CLI" $((DUR + 15)) sockperf pp --tcp -i 127.0.0.1 -p "$PORT" -t "$DUR" -m "$m" > "$out" 2>&1; then
            fl_fail "sockperf pp -m $m exited non-zero"; tail -n 8 "$out"; continue
        fi
        if res=$(check_pp "$out"); then fl_say "[$FL_PHASE] $tag: $res"
        else fl_fail "$tag: $res"; tail -n 12 "$out"; fi
    done
    out=$FL_TMP/$FL_PHASE.tp.out
    if ! fl_run "$CLI" $((DUR + 15)) sockperf tp --tcp -i 127.0.0.1 -p "$PORT" -t 1 -m 16384 > "$out" 2>&1; then
        fl_fail "sockperf tp exited non-zero"; tail -n 8 "$out"
    elif res=$(check_tp "$out"); then fl_say "[$FL_PHASE] tp: $res"
    else fl_fail "tp: $res"; tail -n 8 "$out"; fi
    kill -0 "$spid" 2>/dev/null || { fl_fail "sockperf server died"; fl_show_outputs; }
}

fl_matrix scenario
fl_finish
