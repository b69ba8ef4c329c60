#!/usr/bin/env bash
# selftest/interop/netperf.sh — netperf TCP_STREAM, TCP_RR and TCP_CRR in the
# three setups, when netperf and netserver are on PATH (netperf is not in
# Debian main, so this script is not installed by scripts/need: it skips).
# The data connection's ports are fixed (test option -P) so that the log can
# be checked for them as well as for the control port.
# Data check: each test reports a positive throughput / transaction rate.
. "$(dirname "$0")/lib.sh"
fl_init netperf
command -v netperf > /dev/null && command -v netserver > /dev/null ||
    fl_skip "netperf/netserver not on PATH (not packaged in Debian main)"

# rate OUTPUT — last field of the first all-numeric line of a -P 0 report.
rate() {
    awk 'NF >= 5 { ok = 1; for (i = 1; i <= NF; i++) if ($i !~ /^[0-9.]+$/) ok = 0
                   if (ok) { print $NF; exit } }' "$1"
}

scenario() {
    local spid t out r
    fl_newport PORT
    fl_newport DPORT
    fl_bg netserver "$SRV" netserver -D -4 -L 127.0.0.1 -p "$PORT"
    spid=$FL_LAST_PID
    fl_wait_listen "$PORT" "$spid" || return
    for t in TCP_STREAM TCP_RR TCP_CRR; do
        out=$FL_TMP/$FL_PHASE.$t.out
        if ! fl_run "$CLI" 20 netperf -P 0 -H 127.0.0.1 -p "$PORT" -t "$t" -l 1 -- -P "$DPORT" > "$out" 2>&1; then
            fl_fail "netperf $t exited non-zero"; cat "$out"; continue
        fi
        r=$(rate "$out")
        if awk -v r="${r:-0}" 'BEGIN { exit !(r + 0 > 0) }'; then
            fl_say "[$FL_PHASE] $t: $r"
        else
            fl_fail "netperf $t: no positive rate"; cat "$out"
        fi
    done
}

fl_matrix scenario
fl_finish
