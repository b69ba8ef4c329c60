#!/usr/bin/env bash
# selftest/interop/python.sh — python3 asyncio echo server (speaks first:
# a banner before reading) with an asyncio client (4 concurrent connections)
# and a blocking-socket client (2 connections, writer thread + reader,
# MSG_WAITALL, shutdown(SHUT_WR)) in the three setups; see pyecho.py.
# Data check: per connection, random payloads 1 B .. 4 MiB are echoed back
# with equal length and sha256, and EOF follows the half-close.
. "$(dirname "$0")/lib.sh"
fl_init python
fl_need python3

ECHO=$FL_HERE/pyecho.py
SEED=${PYECHO_SEED:-$((RANDOM * 32768 + RANDOM))}
fl_say "payload seed $SEED (rerun with PYECHO_SEED=$SEED)"

scenario() {
    local spid kind out
    fl_newport PORT
    fl_bg pyecho-server "$SRV" "$PY" "$ECHO" server "$PORT"
    spid=$FL_LAST_PID
    fl_wait_listen "$PORT" "$spid" || return
    for kind in aclient sclient; do
        out=$FL_TMP/$FL_PHASE.$kind.out
        if fl_run "$CLI" 40 "$PY" "$ECHO" "$kind" "$PORT" "$SEED" > "$out" 2>&1; then
            fl_say "[$FL_PHASE] $(tail -n 1 "$out")"
        else
            fl_fail "$kind: $(tail -n 3 "$out")"
            fl_show_outputs
        fi
    done
}

fl_matrix scenario
fl_finish
