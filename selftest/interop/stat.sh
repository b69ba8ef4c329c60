#!/usr/bin/env bash
# selftest/interop/stat.sh — `fastloop stat` against a live, unmodified
# iperf3 pair, both ends preloaded: while `iperf3 -c -t 3` runs, the
# listing must show
#   - the listener on the port, owned by the server's pid;
#   - iperf3's two connections (control and data) with transport uds, the
#     client's and the server's pid on each, joined into one line each;
#   - nonzero byte counts: the data connection carries > 1 MiB client to
#     server, the control connection bytes both ways;
# `--summary` must count the uds decisions of both ends of both
# connections, and `--summary -p` list both processes.  After the run the
# processes' statistics files must be gone (removed at exit).
#
# Only both-ends-preloaded is run (the one- and no-end setups publish
# nothing of interest).  The log is also checked as in the other scripts
# (fl_expect_fast), so that a fast path that was not taken is not
# reported as a stat failure.
. "$(dirname "$0")/lib.sh"
# iperf3's control connection makes few calls while the data flows: a lazy
# server (the default) leaves it on TCP, rightly; the listing is what is
# tested here, so both connections switch in accept
export FASTLOOP_SWITCH_AFTER=0
fl_init stat
# the transport the fast connections are expected on (auto: shm)
case $FL_TRANSPORT in uds) T=uds ;; *) T=shm ;; esac
fl_need iperf3

STAT_OUT=$FL_TMP/stat.out

# flstat ARGS... — run the wrapper's subcommand on this test's registry,
# finding the reader next to $LIB (as an install would).
flstat() {
    FASTLOOP_LIB=$LIB "$REPO/bin/fastloop" stat --dir "$FASTLOOP_DIR" "$@"
}

# iperf3_pid PID — the iperf3 process at or below PID (timeout, env).
iperf3_pid() {
    local p
    for p in "$1" $(fl_descendants "$1"); do
        [ "$(cat /proc/"$p"/comm 2>/dev/null)" = iperf3 ] && { echo "$p"; return 0; }
    done
    return 1
}

# conn_lines — the connection lines for our port, with both pids, from
# the listing: TRANSPORT CLIENT PID/PROG SERVER PID/PROG C>S S>C AGE
conn_lines() {
    awk -v port=":$PORT" -v c="$CPID/iperf3" -v s="$SPID/iperf3" \
        '$4 ~ port"$" && $3 == c && $5 == s' "$STAT_OUT"
}

scenario() {
    local spid cpid i out sum sump n
    fl_newport PORT
    fl_bg iperf3-s pre iperf3 -s -1 -p "$PORT" -J
    spid=$FL_LAST_PID
    fl_wait_listen "$PORT" "$spid" || return
    fl_env pre
    timeout -k 3 30 "${FL_ENV[@]}" iperf3 -c 127.0.0.1 -p "$PORT" -t 3 -J \
        > "$FL_TMP/client.json" 2> "$FL_TMP/client.err" &
    cpid=$!
    SPID=$(iperf3_pid "$spid") || { fl_fail "no iperf3 server process under $spid"; }
    # the client's pid, once it exists; then the listing, mid-transfer
    for i in $(seq 50); do
        CPID=$(iperf3_pid "$cpid") && break
        sleep 0.05
    done
    [ -n "${CPID:-}" ] || fl_fail "no iperf3 client process under $cpid"
    sleep 1.5
    if ! flstat > "$STAT_OUT" 2> "$FL_TMP/stat.err"; then
        fl_fail "fastloop stat failed: $(cat "$FL_TMP/stat.err")"
    fi
    sum=$(flstat --summary 2>&1)
    sump=$(flstat --summary -p 2>&1)
    if ! fl_wait_exit "$cpid" 20; then
        fl_fail "iperf3 client failed or timed out"; tail -n 5 "$FL_TMP/client.err"
    fi
    fl_wait_exit "$spid" 15 || { fl_fail "iperf3 -s -1 did not exit after the run"; fl_stop "$spid"; }
    echo "---- fastloop stat during the transfer"; cat "$STAT_OUT"
    echo "---- fastloop stat --summary -p"; printf '%s\n' "$sump"

    # the listener (from its handshake file)
    fl_check "listener on port $PORT owned by the server ($SPID)" \
        grep -qE "^ +[^ ]+:$PORT +$SPID +iperf3\$" "$STAT_OUT"
    # the two connections, both ends found, transport uds
    n=$(conn_lines | awk -v t="$T" '$1 == t' | wc -l)
    fl_check "2 $T connections joined client $CPID <-> server $SPID (found $n)" \
        test "$n" = 2
    n=$(conn_lines | awk -v t="$T" '$1 != t' | wc -l)
    fl_check "no connection of the pair on another transport (found $n)" test "$n" = 0
    # bytes: the data connection streams, the control one talks both ways
    fl_check "data connection: > 1 MiB client to server" \
        test -n "$(conn_lines | awk '$6 > 1048576')"
    fl_check "control connection: bytes both ways" \
        test -n "$(conn_lines | awk '$6 > 0 && $7 > 0')"
    # summary: 2 connections x 2 ends decided $T, all 4 live
    n=$(printf '%s\n' "$sum" | awk -v t="$T" '$1 == t && NF == 2 { print $2 }')
    fl_check "--summary counts >= 4 $T decisions (found ${n:-none})" test "${n:-0}" -ge 4
    fl_check "--summary shows 4 live $T connection ends" \
        grep -qE "^Live connection ends: 4 $T=4," <<< "$sum"
    # per process: both iperf3 processes with 2 live, 2 $T each (the
    # columns after LIVE and UNLISTED: uds, shm, tcp)
    if [ "$T" = shm ]; then cols="2 +0 +0 +2 "; else cols="2 +0 +2 "; fi
    for p in "$SPID" "$CPID"; do
        fl_check "--summary -p: process $p with 2 live connections, 2 $T" \
            grep -qE "^ +$p +iperf3 +$cols" <<< "$sump"
    done
    # and after the run the processes removed their files
    out=$(ls "$FASTLOOP_DIR" | grep '^p-')
    fl_check "statistics files removed at exit (left: ${out:-none})" test -z "$out"
    fl_check "no connection listed after the run" \
        grep -q '^Connections: 0' <<< "$(flstat 2>&1)"
}

fl_phase both
SRV=pre CLI=pre
scenario
fl_end_phase
fl_expect_fast "${FL_PORTS[@]}"
fl_finish
