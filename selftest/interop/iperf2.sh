#!/usr/bin/env bash
# selftest/interop/iperf2.sh — unmodified iperf (version 2) in the three
# setups: one stream, four parallel streams (-P 4) and --full-duplex (both
# directions at once on one connection).
# Data check: iperf2 reads until EOF, so the CSV reports (-y C) must show
# exactly the requested bytes, client side and server side alike.
. "$(dirname "$0")/lib.sh"
fl_init iperf2
fl_need iperf

BYTES=${IPERF2_BYTES:-134217728}     # 128 MiB per stream and direction

# csv_total FILE — "lines total": per-connection report lines (ID >= 0) in
# an iperf2 CSV output and the sum of their byte counts (field 8).
csv_total() {
    awk -F, 'NF >= 9 && $6 >= 0 { n++; b += $8 } END { printf "%d %.0f\n", n, b }' "$1"
}

# one_run TAG LINES OPTS... — fresh server, one client run; LINES report
# lines are expected from each side, each side's bytes must add up to
# LINES * BYTES.
one_run() {
    local tag=$1 lines=$2 spid co so want cl cb sl sb end; shift 2
    co=$FL_TMP/$FL_PHASE.$tag.client.csv
    so=$FL_TMP/$FL_PHASE.iperf-s-$tag.out
    want=$((lines * BYTES))
    fl_bg "iperf-s-$tag" "$SRV" iperf -s -p "$PORT" -y C
    spid=$FL_LAST_PID
    fl_wait_listen "$PORT" "$spid" || return
    if ! fl_run "$CLI" 30 iperf -c 127.0.0.1 -p "$PORT" -n "$BYTES" -y C "$@" > "$co" 2> "$co.err"; then
        fl_fail "iperf client $* failed"; tail -n 5 "$co" "$co.err"
    fi
    # the server prints a connection's line when it has read that
    # connection to EOF: wait (bounded) for all of them
    end=$((SECONDS + 10))
    while read -r sl sb < <(csv_total "$so"); [ "$sl" -lt "$lines" ] && [ $SECONDS -lt $end ]; do
        sleep 0.1
    done
    fl_stop "$spid"
    read -r cl cb < <(csv_total "$co")
    read -r sl sb < <(csv_total "$so")
    if [ "$cl" = "$lines" ] && [ "$sl" = "$lines" ] && [ "$cb" = "$want" ] && [ "$sb" = "$want" ]; then
        fl_say "[$FL_PHASE] $tag: client $cl reports $cb B, server $sl reports $sb B (= $lines x $BYTES)"
    else
        fl_fail "$tag: expected $lines reports of $BYTES B each side: client $cl reports $cb B, server $sl reports $sb B"
        echo "-- client:"; cat "$co" "$co.err"; echo "-- server:"; cat "$so"
    fi
}

scenario() {
    fl_newport PORT
    one_run single 1
    one_run parallel 4 -P 4
    one_run full-duplex 2 --full-duplex
}

fl_matrix scenario
fl_finish
