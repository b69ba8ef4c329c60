#!/usr/bin/env bash
# selftest/interop/netperf.sh — unmodified netperf TCP_STREAM, TCP_MAERTS,
# TCP_RR and TCP_CRR in the three setups, against one netserver per setup.
#
# netperf is not in Debian main: scripts/build-netperf builds netperf and
# netserver from the upstream tarball (shared/third_party/ beside the clone,
# or NETPERF_TARBALL) into <build>/third_party/netperf/bin, which goes first
# on PATH; <build> is the directory of $LIB when it holds a netperf build,
# else $REPO/${BUILD:-build}. The script skips (77) only when there is no
# tarball and no netperf anywhere.
#
# Connections: one control connection per netperf run to netserver's port,
# and data connections to a port fixed per test (test option -P ,PORT) so
# that the log can be checked per test: exactly one data connection for
# TCP_STREAM, TCP_MAERTS and TCP_RR, one per transaction for TCP_CRR (netperf
# reports the count; the run's last connection, cut by the timer, may come
# on top and may be the only one that stays TCP).
#   both  every connection transport=uds on both ends
#   srv   server lines transport=tcp reason=peer-not-preloaded
#   cli   client lines transport=tcp reason=no-listener
# Data check on netperf's own counts (omni output selectors, -o):
#   STREAM  the receiver got at least what the sender counted as sent, and
#           less than one more send;
#   MAERTS  0 < received <= sent + one send (the receiver stops at the timer)
#   RR/CRR  transactions > 0; 1 B requests and responses: bytes sent and
#           received on both ends within 1 of the transaction count.
. "$(dirname "$0")/lib.sh"
fl_init netperf

DUR=${NETPERF_SECONDS:-1}
TESTS="TCP_STREAM TCP_MAERTS TCP_RR TCP_CRR"

# ---- find or build netperf
np_build=$(dirname "$LIB")
[ -x "$np_build/third_party/netperf/bin/netserver" ] || np_build=${BUILD:-build}
case $np_build in /*) ;; *) np_build=$REPO/$np_build ;; esac
np_bin=$np_build/third_party/netperf/bin
BUILD=$np_build "$REPO/scripts/build-netperf" > "$FL_TMP/build-netperf.out" 2>&1
case $? in
0)  ;;
77) if [ -x "$np_bin/netperf" ] && [ -x "$np_bin/netserver" ]; then
        fl_say "no tarball; using the netperf already built in $np_bin"
    elif command -v netperf > /dev/null && command -v netserver > /dev/null; then
        fl_say "no tarball; using $(command -v netperf) from PATH"
    else
        fl_skip "$(tail -n 1 "$FL_TMP/build-netperf.out" | sed 's/^build-netperf: //')"
    fi ;;
*)  fl_fail "scripts/build-netperf failed:"; cat "$FL_TMP/build-netperf.out"; fl_finish ;;
esac
PATH=$np_bin:$PATH
fl_say "using $(command -v netperf), $(command -v netserver)"

SEL=THROUGHPUT,THROUGHPUT_UNITS,LOCAL_SEND_SIZE,REMOTE_SEND_SIZE,LOCAL_BYTES_SENT,LOCAL_BYTES_RECVD,REMOTE_BYTES_SENT,REMOTE_BYTES_RECVD,LOCAL_SEND_CALLS,REMOTE_RECV_CALLS

# check_out TEST OUTPUT — netperf's counts (the -o line); prints a summary,
# and for RR/CRR the transaction count as the last word. Exit 1 if insane.
check_out() {
    awk -F, -v t="$1" '
    /^[0-9.]+,/ { line = $0; split($0, v, ",") }
    END {
        if (line == "") { print "no result line"; exit 1 }
        tput = v[1]; unit = v[2]; lss = v[3]; rss = v[4]
        ls = v[5]; lr = v[6]; rs = v[7]; rr = v[8]; ltx = v[9]; rtx = v[10]
        ok = tput + 0 > 0
        if (t == "TCP_STREAM") {
            ok = ok && ls > 0 && rr >= ls && rr - ls < lss
            printf "%s %s, sent %d, received %d", tput, unit, ls, rr
        } else if (t == "TCP_MAERTS") {
            ok = ok && rs > 0 && lr > 0 && lr <= rs + rss
            printf "%s %s, sent %d, received %d", tput, unit, rs, lr
        } else {
            n = ltx
            ok = ok && n > 0
            split(ls " " lr " " rs " " rr " " rtx, c, " ")
            for (i = 1; i <= 5; i++) if (c[i] - n > 1 || n - c[i] > 1) ok = 0
            printf "%s %s, bytes sent/received local %d/%d remote %d/%d, transactions %d", tput, unit, ls, lr, rs, rr, n
        }
        exit !ok
    }' "$2"
}

# count_lines SIDE PORT REGEX — lines of SIDE for PORT matching REGEX.
count_lines() { fl_lines "$1" "$2" | grep -cE "$3"; }

# expect_conns PORT WHAT LO HI — the phase's expected log lines for PORT:
# LO..HI connections; in "both" all transport=uds on both ends, except (with
# HI > LO) at most HI-LO connections cut by netperf's timer that may stay
# TCP; in srv/cli the preloaded side's lines all TCP with the right reason.
expect_conns() {
    local port=$1 what=$2 lo=$3 hi=$4 cf sf ct st n nr want reason side
    case $FL_TRANSPORT in auto) want='transport=(uds|shm)' ;; *) want="transport=$FL_TRANSPORT" ;; esac
    case $FL_PHASE in
    both)
        # a lazy server leaves each TCP_CRR connection (one request and
        # response) on TCP: that is the design, counted as served
        if fl_lazy; then
            cf=$(count_lines client "$port" " ($want|transport=tcp reason=revoked)( |$)")
            sf=$(count_lines server "$port" " ($want|transport=tcp reason=short-lived)( |$)")
        else
            cf=$(count_lines client "$port" " $want( |$)")
            sf=$(count_lines server "$port" " $want( |$)")
        fi
        ct=$(count_lines client "$port" .)
        st=$(count_lines server "$port" .)
        if [ "$cf" -ge "$lo" ] && [ "$sf" -ge "$lo" ] && [ "$ct" -le "$hi" ] && [ "$st" -le "$hi" ]; then
            fl_ok "$what (port $port): client $cf/$ct, server $sf/$st lines $want (expected $lo..$hi)"
        else
            fl_fail "$what (port $port): expected $lo..$hi connections, at least $lo of them $want on both ends; client: $cf of $ct lines $want, server: $sf of $st"
            fl_show_log "$port"
        fi
        return ;;
    srv) side=server reason=peer-not-preloaded
         fl_lazy && reason='(peer-not-preloaded|short-lived)' ;;
    cli) side=client reason=no-listener ;;
    esac
    n=$(count_lines "$side" "$port" .)
    nr=$(count_lines "$side" "$port" " transport=tcp reason=$reason\$")
    if [ "$n" -ge "$lo" ] && [ "$n" -le "$hi" ] && [ "$nr" = "$n" ]; then
        fl_ok "$what (port $port): $n $side lines transport=tcp reason=$reason"
    else
        fl_fail "$what (port $port): expected $lo..$hi $side lines, all transport=tcp reason=$reason; got $n lines, $nr with that reason"
        fl_show_log "$port"
    fi
}

scenario() {
    local spid t out res dp rc n runs=0 summary= cports
    local -A dport=() lo=() hi=()
    fl_newport PORT
    fl_bg netserver "$SRV" netserver -D -4 -L 127.0.0.1 -p "$PORT"
    spid=$FL_LAST_PID
    fl_wait_listen "$PORT" "$spid" || return
    for t in $TESTS; do
        fl_newport dp
        dport[$t]=$dp
        out=$FL_TMP/$FL_PHASE.$t.out
        runs=$((runs + 1))
        # TCP_CRR takes about DUR + 4 s (netserver answers late), the others DUR
        # netperf's TCP_CRR binds its client ports itself, 5000-65535 by
        # default: a run leaves TIME-WAIT on nearly every port, also the
        # ones below the ephemeral range that fl_port hands to the next
        # servers (no free port for 60 s).  -p keeps it to the kernel's range.
        cports=()
        [ "$t" = TCP_CRR ] && cports=(-p "$(fl_ephemeral)")
        fl_run "$CLI" $((DUR + 12)) netperf -P 0 -H 127.0.0.1 -p "$PORT" -t "$t" -l "$DUR" \
            -- -P ",$dp" -o "$SEL" "${cports[@]}" > "$out" 2>&1
        rc=$?
        if [ $rc != 0 ]; then
            fl_fail "netperf $t exited $rc:"; cat "$out"
            echo "---- netserver output"; tail -n 15 "$FL_TMP/$FL_PHASE.netserver.out"
            fl_show_log
            # a hang would likely repeat: keep the script within its time
            if [ $rc = 124 ] || [ $rc = 137 ]; then
                fl_fail "netperf $t hung: the setup's remaining tests are not run"; break
            fi
            continue
        fi
        if res=$(check_out "$t" "$out"); then
            fl_say "[$FL_PHASE] $t: $res"
        else
            fl_fail "netperf $t: counts not sane: $res"; cat "$out"
        fi
        case $t in
        TCP_CRR)
            # one connection per transaction, plus the one the timer cut
            # (no count, no check of the lines: the run failed above)
            n=${res##* }
            [[ $n =~ ^[0-9]+$ ]] && { lo[$t]=$n; hi[$t]=$((n + 2)); } ;;
        *)  lo[$t]=1; hi[$t]=1 ;;
        esac
    done
    kill -0 "$spid" 2>/dev/null || { fl_fail "netserver died"; fl_show_outputs; }
    # stop netserver and its children so that every line is in the log
    fl_end_phase
    # one control connection per netperf run
    expect_conns "$PORT" "control connections" "$runs" "$runs"
    for t in $TESTS; do
        [ -n "${lo[$t]:-}" ] || continue
        expect_conns "${dport[$t]}" "$t data" "${lo[$t]}" "${hi[$t]}"
        summary+="$t:$(count_lines "$([ "$FL_PHASE" = cli ] && echo client || echo server)" "${dport[$t]}" .) "
    done
    fl_say "[$FL_PHASE] data connections logged per test: $summary"
}

fl_matrix scenario
fl_finish
