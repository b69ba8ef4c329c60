# selftest/interop/lib.sh — shared helpers for the interop scripts.
#
# Each script tests one unmodified program over loopback TCP in three setups:
#   both  both ends run with LD_PRELOAD=$LIB   -> every connection on the
#         phase's ports is logged transport=uds by client AND server, and
#         no line for those ports says transport=tcp;
#   srv   server preloaded, client plain         -> the server logs
#         transport=tcp with a reason for every connection;
#   cli   client preloaded, server plain         -> the client logs
#         transport=tcp with a reason for every connection.
# and asserts on the data the program itself reports (byte counts, checksums).
#
# Usage in a script:
#   . "$(dirname "$0")/lib.sh"
#   fl_init NAME                       # temp dirs, private FASTLOOP_DIR, traps
#   fl_need iperf3                     # or skip (77) when missing and not root
#   scenario() { fl_newport PORT; fl_bg NAME "$SRV" server...;
#                fl_run "$CLI" SECS client...; check the data; }
#   fl_matrix scenario                 # runs both/srv/cli + log assertions
#   fl_finish                          # exit 0 or 1
#
# Environment:
#   LIB                 library to preload (default $REPO/build/libfastloop.so)
#   FASTLOOP_TRANSPORT  transport asked of preloaded processes (default uds);
#                       the fast-path assertion expects it in the log (auto
#                       accepts any transport other than tcp)
#   FL_SETUPS           setups to run (default "both srv cli"; nginx.sh also
#                       knows "uid"), e.g. FL_SETUPS=both to reproduce one
#   FL_KEEP=1           keep the temp dir (its path is printed) for debugging
#   FL_VERBOSE=1        print every passed check too

set -u

FL_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=${REPO:-$(cd "$FL_HERE/../.." && pwd)}
LIB=${LIB:-$REPO/build/libfastloop.so}
case $LIB in /*) ;; *) LIB=$PWD/$LIB ;; esac
FL_TRANSPORT=${FASTLOOP_TRANSPORT:-uds}
# The Debian interpreter, not a version-manager shim (a shell script that
# would be preloaded too and only add noise).
if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=python3; fi

FL_FAILS=0
FL_PIDS=()
FL_PHASE_PIDS=()
FL_PORTS=()
FL_TMP=
FASTLOOP_DIR=

# fl_say MSG... — one line of progress, prefixed with the script name.
fl_say() { printf '%s: %s\n' "${FL_NAME:-interop}" "$*"; }

# fl_fail MSG... — record a failed assertion; the script goes on so that one
# run reports every failure; fl_finish turns the count into the exit code.
fl_fail() {
    FL_FAILS=$((FL_FAILS + 1))
    printf '%s: FAIL [%s] %s\n' "${FL_NAME:-interop}" "${FL_PHASE:-setup}" "$*"
}

# fl_ok MSG... — record a passed assertion (printed with FL_VERBOSE=1).
fl_ok() {
    [ "${FL_VERBOSE:-0}" = 1 ] && printf '%s: ok   [%s] %s\n' "${FL_NAME:-interop}" "${FL_PHASE:-setup}" "$*"
    return 0
}

# fl_check DESC CMD... — run CMD; pass if it exits 0, fail with DESC if not.
fl_check() {
    local desc=$1; shift
    if "$@"; then fl_ok "$desc"; else fl_fail "$desc"; fi
}

# fl_skip WHY — this script cannot run here: say why and exit 77.
fl_skip() {
    printf '%s: SKIP %s\n' "${FL_NAME:-interop}" "$*"
    exit 77
}

# fl_need CMD[:PKG]... — make sure the commands exist (scripts/need installs
# Debian packages when we are root); skip when they cannot be had.
fl_need() {
    if [ -x "$REPO/scripts/need" ]; then
        "$REPO/scripts/need" "$@" || fl_skip "missing tool(s): $* (not installable here)"
    else
        local spec
        for spec in "$@"; do
            command -v "${spec%%:*}" >/dev/null 2>&1 || fl_skip "missing tool: ${spec%%:*}"
        done
    fi
}

# fl_init NAME — temp dir, private registry dir (0700), cleanup trap.
fl_init() {
    FL_NAME=$1
    FL_T0=$SECONDS
    FL_TMP=$(mktemp -d "${TMPDIR:-/tmp}/fastloop-interop-$FL_NAME.XXXXXX") || exit 1
    FASTLOOP_DIR=$(mktemp -d "${TMPDIR:-/tmp}/fastloop-reg-$FL_NAME.XXXXXX") || exit 1
    chmod 700 "$FL_TMP" "$FASTLOOP_DIR"
    trap fl_cleanup EXIT
    trap 'fl_fail "interrupted by a signal"; exit 1' INT TERM HUP
    command -v ss >/dev/null 2>&1 || fl_need ss:iproute2
    command -v timeout >/dev/null 2>&1 || fl_skip "timeout (coreutils) missing"
    if [ ! -f "$LIB" ]; then
        fl_say "NOTE: $LIB not found: both ends run plain TCP, fast-path assertions will fail"
    fi
    [ "${FL_KEEP:-0}" = 1 ] && fl_say "temp dir kept: $FL_TMP"
    return 0
}

# fl_descendants PID — PIDs of all processes below PID (children first found
# through /proc/PID/task/*/children), one a line.
fl_descendants() {
    local p c
    for p in /proc/"$1"/task/*/children; do
        [ -r "$p" ] || continue
        for c in $(cat "$p" 2>/dev/null); do
            echo "$c"
            fl_descendants "$c"
        done
    done
}

# fl_stop PID... — stop each PID and its descendants: TERM, up to 5 s, KILL.
fl_stop() {
    local all=() p i alive
    for p in "$@"; do
        kill -0 "$p" 2>/dev/null || continue
        all+=("$p")
        all+=($(fl_descendants "$p"))
    done
    [ ${#all[@]} -eq 0 ] && { wait "$@" 2>/dev/null; return 0; }
    kill -TERM "${all[@]}" 2>/dev/null
    for i in $(seq 50); do
        alive=0
        for p in "${all[@]}"; do
            # a zombie child of ours counts as gone
            if kill -0 "$p" 2>/dev/null && [ "$(awk '{print $3}' /proc/"$p"/stat 2>/dev/null)" != Z ]; then
                alive=1; break
            fi
        done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    [ $alive = 1 ] && kill -KILL "${all[@]}" 2>/dev/null
    wait "$@" 2>/dev/null
    return 0
}

# fl_cleanup — EXIT trap: stop every server we started, remove temp dirs.
fl_cleanup() {
    local rc=$?
    trap - EXIT
    [ ${#FL_PIDS[@]} -gt 0 ] && fl_stop "${FL_PIDS[@]}"
    if [ "${FL_KEEP:-0}" != 1 ]; then
        [ -n "$FL_TMP" ] && rm -rf "$FL_TMP"
        [ -n "$FASTLOOP_DIR" ] && rm -rf "$FASTLOOP_DIR"
    fi
    exit $rc
}

# fl_port — print a free TCP port on 127.0.0.1: random, below the ephemeral
# range (so no client's source port takes it meanwhile), in no socket state
# at all (LISTEN, ESTAB, TIME-WAIT) and not handed out before in this run.
fl_port() {
    local lo hi p tries used
    read -r lo hi < /proc/sys/net/ipv4/ip_local_port_range
    for tries in $(seq 200); do
        if [ "$lo" -gt 11024 ]; then
            p=$((10000 + (RANDOM * 32768 + RANDOM) % (lo - 10000)))
        else
            p=$((hi + 1 + (RANDOM * 32768 + RANDOM) % (65535 - hi)))
        fi
        case " ${FL_PORTS[*]} " in *" $p "*) continue ;; esac
        used=$(ss -Htan "( sport = :$p or dport = :$p )" 2>/dev/null | head -1)
        [ -z "$used" ] && { echo "$p"; return 0; }
    done
    echo "fl_port: no free port found" >&2
    return 1
}

# fl_ephemeral — the kernel's ephemeral port range as LO,HI (for programs
# that pick their own client ports, such as netperf's TCP_CRR).
fl_ephemeral() {
    local lo hi
    read -r lo hi < /proc/sys/net/ipv4/ip_local_port_range
    echo "$lo,$hi"
}

# fl_newport VAR — pick a free port, store it in VAR and in the phase's list
# of ports whose log lines are checked.
fl_newport() {
    local p
    p=$(fl_port) || { fl_fail "no free port"; exit 1; }
    FL_PORTS+=("$p")
    printf -v "$1" '%s' "$p"
}

# fl_env MODE — the env(1) prefix for MODE, stored in the array FL_ENV:
#   pre     preloaded, configured by FASTLOOP_* variables, logging to $FL_LOG
#   precfg  preloaded, configured only by a FASTLOOP_CONFIG file (for
#           programs such as nginx whose workers get an emptied environment)
#   plain   LD_PRELOAD and FASTLOOP_* removed
fl_env() {
    case $1 in
    pre)
        FL_ENV=(env -u FASTLOOP_CONFIG FASTLOOP_TRANSPORT="$FL_TRANSPORT" FASTLOOP_LOG=info
                FASTLOOP_LOG_FILE="$FL_LOG" FASTLOOP_DIR="$FASTLOOP_DIR")
        [ -f "$LIB" ] && FL_ENV+=(LD_PRELOAD="$LIB")
        ;;
    precfg)
        printf 'transport = %s\nlog = info\nlog_file = %s\ndir = %s\n' \
            "$FL_TRANSPORT" "$FL_LOG" "$FASTLOOP_DIR" > "$FL_TMP/$FL_PHASE.fastloop.conf"
        FL_ENV=(env -u FASTLOOP_TRANSPORT -u FASTLOOP_LOG -u FASTLOOP_LOG_FILE -u FASTLOOP_DIR
                FASTLOOP_CONFIG="$FL_TMP/$FL_PHASE.fastloop.conf")
        [ -f "$LIB" ] && FL_ENV+=(LD_PRELOAD="$LIB")
        ;;
    plain)
        FL_ENV=(env -u LD_PRELOAD -u FASTLOOP_LOG -u FASTLOOP_LOG_FILE -u FASTLOOP_CONFIG
                -u FASTLOOP_TRANSPORT -u FASTLOOP_DIR)
        ;;
    *) echo "fl_env: bad mode $1" >&2; exit 2 ;;
    esac
}

# fl_bg NAME MODE CMD... — start a server in the background under MODE,
# bounded by timeout(1), stdout+stderr to $FL_TMP/<phase>.NAME.out. Its PID
# (the timeout process, which relays TERM) is in FL_LAST_PID.
fl_bg() {
    local name=$1 mode=$2; shift 2
    fl_env "$mode"
    timeout -k 5 "${FL_SERVER_LIFE:-80}" "${FL_ENV[@]}" "$@" \
        > "$FL_TMP/$FL_PHASE.$name.out" 2>&1 &
    FL_LAST_PID=$!
    FL_PIDS+=("$FL_LAST_PID")
    FL_PHASE_PIDS+=("$FL_LAST_PID")
}

# fl_run MODE SECS CMD... — run a client in the foreground under MODE,
# bounded to SECS; returns its exit status (124 on timeout, said aloud).
fl_run() {
    local mode=$1 secs=$2 rc; shift 2
    fl_env "$mode"
    timeout -k 3 "$secs" "${FL_ENV[@]}" "$@"
    rc=$?
    [ $rc = 124 ] || [ $rc = 137 ] && fl_fail "timed out after ${secs}s: $*"
    return $rc
}

# fl_listening PORT — true when something listens on 127.0.0.1:PORT.
fl_listening() {
    [ -n "$(ss -Htln "( sport = :$1 )" 2>/dev/null | head -1)" ]
}

# fl_wait_listen PORT PID [SECS] — wait (bounded) until PORT listens; fail
# and show the server's output if PID died or time ran out.
fl_wait_listen() {
    local port=$1 pid=$2 secs=${3:-10} end=$((SECONDS + ${3:-10}))
    while [ $SECONDS -le $end ]; do
        fl_listening "$port" && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            fl_fail "server (pid $pid) died before listening on $port"
            fl_show_outputs
            return 1
        fi
        sleep 0.05
    done
    fl_fail "nothing listens on $port after ${secs}s"
    fl_show_outputs
    return 1
}

# fl_wait_exit PID SECS — wait (bounded) for a background PID to exit;
# returns its exit status, or 124 after SECS.
fl_wait_exit() {
    local pid=$1 end=$((SECONDS + $2))
    while kill -0 "$pid" 2>/dev/null; do
        [ $SECONDS -ge $end ] && return 124
        [ "$(awk '{print $3}' /proc/"$pid"/stat 2>/dev/null)" = Z ] && break
        sleep 0.05
    done
    wait "$pid"
}

# fl_show_outputs — print the tail of this phase's server outputs.
fl_show_outputs() {
    local f
    for f in "$FL_TMP/$FL_PHASE".*.out; do
        [ -s "$f" ] || continue
        echo "---- ${f##*/} (last 15 lines)"
        tail -n 15 "$f"
    done
}

# fl_show_log [PORT...] — print the log lines of the given ports (or the
# whole log) as an excerpt for a failure report.
fl_show_log() {
    echo "---- $FL_LOG (${1:+ports $* }excerpt)"
    if [ ! -s "$FL_LOG" ]; then
        echo "(empty or missing: no preloaded process logged anything)"
    elif [ $# -gt 0 ]; then
        local pat
        pat=$(printf ':%s( |<|$)|' "$@"); pat=${pat%|}
        grep -E "$pat" "$FL_LOG" | head -n 12
        echo "($(grep -cE "$pat" "$FL_LOG") lines for these ports, $(wc -l < "$FL_LOG") in all)"
    else
        head -n 12 "$FL_LOG"
    fi
    grep -vE ' conn (client|server) ' "$FL_LOG" 2>/dev/null | head -n 5 | sed 's/^/other: /'
    echo "----"
}

# fl_lines SIDE PORT — the log's connection lines of SIDE (client|server)
# whose listening port is PORT.
#   client: "fastloop[PID] conn client A:p->B:PORT transport=..."
#   server: "fastloop[PID] conn server B:PORT<-A:p transport=..."
fl_lines() {
    [ -f "$FL_LOG" ] || return 0
    case $1 in
    client) grep -E " conn client [^ ]+->[^ ]+:$2( |$)" "$FL_LOG" ;;
    server) grep -E " conn server [^ ]+:$2<-" "$FL_LOG" ;;
    esac
}

# fl_lazy — true when servers adopt late (FASTLOOP_SWITCH_AFTER unset,
# the default 8, or set and not 0): a connection closed before it made
# that many data calls stays TCP by design (server: reason=short-lived,
# client: revoked).
fl_lazy() {
    [ "${FASTLOOP_SWITCH_AFTER:-8}" != 0 ]
}

# fl_expect_fast PORT... — both ends preloaded: every client and server line
# for each port shows the fast transport, there is at least one of each, and
# none shows transport=tcp.  With fl_lazy, a connection that ended before
# it proved long-lived may stay TCP: a client line reason=revoked, and a
# server line reason=short-lived (or peer-not-preloaded) for each (a
# long-lived connection that stayed TCP logs neither).
fl_expect_fast() {
    local port want nc ns nslow nrev nshort nfast=0 nother bad=0
    [ $# -gt 0 ] || { fl_fail "fl_expect_fast: no port to check"; return 1; }
    case $FL_TRANSPORT in
    auto) want='transport=(uds|shm)' ;;
    *) want="transport=$FL_TRANSPORT" ;;
    esac
    for port in "$@"; do
        nc=$(fl_lines client "$port" | grep -c .)
        ns=$(fl_lines server "$port" | grep -c .)
        nslow=$( { fl_lines client "$port"; fl_lines server "$port"; } | grep -cvE " $want( |$)")
        # A client that closes a connection before the server accepted it
        # (wrk stopping at the end of its run) rightly stays TCP: its line
        # says reason=revoked and the server's peer-not-preloaded.  Those
        # pairs are allowed, up to 1 % of the connections; nothing else.
        nrev=$(fl_lines client "$port" | grep -cE " transport=tcp reason=revoked$")
        nshort=0
        # trial-busy: a connection used by two threads at once (iperf 2's
        # full duplex: one always blocked in recv) is never switched
        # by the default, a documented limit
        # With fl_lazy a client that closes or shuts down before its server
        # adopted revokes its claim, by design, whatever the server's line
        # then says (short-lived, or peer-not-preloaded when the server
        # made its calls after that): every revoked pair is allowed (a
        # port of short connections only, netperf's TCP_CRR, has no fast
        # one), but some connection of the ports checked must be fast.
        fl_lazy && nshort=$nrev
        nfast=$((nfast + nc - nrev))
        nother=$( { fl_lines client "$port"; fl_lines server "$port"; } |
            grep -vE " $want( |$)" | grep -cvE "reason=(revoked|peer-not-preloaded|short-lived|trial-busy)$")
        if [ "$nc" -ge 1 ] && [ "$ns" -ge 1 ] && [ "$nother" = 0 ] &&
           [ "$nslow" -le $((2 * nrev)) ] && [ $((100 * (nrev - nshort))) -le "$nc" ]; then
            fl_ok "port $port: $nc client + $ns server lines, all $want but $nshort short-lived (TCP by design) and $((nrev - nshort)) closed before accept"
        else
            fl_fail "fast path not used on port $port: $nc client lines, $ns server lines, $nslow not $want"
            bad=1
        fi
    done
    if [ $bad = 0 ] && [ "$nfast" = 0 ]; then
        fl_fail "fast path not used on any connection of ports $*"
        bad=1
    fi
    [ $bad = 1 ] && fl_show_log "$@"
    [ $bad = 0 ] && fl_say "[$FL_PHASE] fast path on every connection ($(for p in "$@"; do printf '%s:%sc/%ss ' "$p" "$(fl_lines client "$p" | grep -c .)" "$(fl_lines server "$p" | grep -c .)"; done))"
    return $bad
}

# fl_expect_tcp SIDE PORT... — only SIDE is preloaded: it logs at least one
# line per port, every one transport=tcp with a known reason, and the other
# side logs nothing (it is not preloaded).
fl_expect_tcp() {
    local side=$1 other port n nbad nother bad=0 reasons; shift
    [ "$side" = server ] && other=client || other=server
    [ $# -gt 0 ] || { fl_fail "fl_expect_tcp: no port to check"; return 1; }
    for port in "$@"; do
        n=$(fl_lines "$side" "$port" | grep -c .)
        nbad=$(fl_lines "$side" "$port" | grep -cvE ' transport=tcp reason=(no-listener|peer-not-preloaded|revoked(-[a-z-]+)?|uid-mismatch|server-declined|short-lived|trial-busy|disabled|unsupported|error-[^ ]+)( |$)')
        nother=$(fl_lines "$other" "$port" | grep -c .)
        if [ "$n" -ge 1 ] && [ "$nbad" = 0 ] && [ "$nother" = 0 ]; then
            reasons=$(fl_lines "$side" "$port" | grep -oE 'reason=[^ ]+' | sort | uniq -c | awk '{printf "%s x%s ", $2, $1}')
            fl_ok "port $port: $n $side lines, all tcp ($reasons)"
        else
            fl_fail "port $port: expected $side lines with transport=tcp reason=...: $n $side lines, $nbad not tcp-with-reason, $nother $other lines (plain side must not log)"
            bad=1
        fi
    done
    [ $bad = 1 ] && fl_show_log "$@"
    [ $bad = 0 ] && fl_say "[$FL_PHASE] $side stays TCP: $( for p in "$@"; do fl_lines "$side" "$p"; done | grep -oE 'reason=[^ ]+' | sort | uniq -c | awk '{printf "%s x%s ", $2, $1}')"
    return $bad
}

# fl_expect_consistent PORT... — both ends preloaded where the fast path may
# legitimately be refused (e.g. the two ends run as different users): for
# every connection (matched by the client's source port) client and server
# lines exist and agree on the transport, and no line reports an error-*
# reason (a setup failure on every connection is a bug, not a fallback).
fl_expect_consistent() {
    local port res bad=0
    [ $# -gt 0 ] || { fl_fail "fl_expect_consistent: no port to check"; return 1; }
    for port in "$@"; do
        if res=$( { fl_lines client "$port"; fl_lines server "$port"; } | awk '
            {
                t = $0; sub(/.* transport=/, "", t); split(t, w, " "); tr = w[1]
                if (t ~ /reason=error-/) err++
                # key: client source port and its n-th use (ports get reused)
                if ($0 ~ / conn client /) { a = $0; sub(/->.*/, "", a); n = split(a, f, ":"); c[f[n], ++nci[f[n]]] = tr }
                else { a = $0; sub(/.*<-/, "", a); sub(/ .*/, "", a); n = split(a, f, ":"); s[f[n], ++nsi[f[n]]] = tr }
            }
            END {
                for (k in c) { nc++; if (!(k in s)) { miss++ } else if (c[k] != s[k]) { diff++ } else if (c[k] == "tcp") tcp++; else fast++ }
                for (k in s) if (!(k in c)) miss++
                printf "%d connections: %d fast, %d tcp, %d disagree, %d one-sided, %d lines error-*", nc, fast, tcp, diff, miss, err
                exit !(nc > 0 && diff + miss + err == 0)
            }'); then
            fl_say "[$FL_PHASE] port $port: $res"
        else
            fl_fail "port $port: client and server disagree or fail: $res"
            bad=1
        fi
    done
    [ $bad = 1 ] && fl_show_log "$@"
    return $bad
}

# fl_phase NAME — start a phase: fresh log, fresh port list, no servers.
fl_phase() {
    FL_PHASE=$1
    FL_LOG=$FL_TMP/$1.log
    : > "$FL_LOG"
    chmod 600 "$FL_LOG"
    FL_PORTS=()
    FL_PHASE_PIDS=()
    FL_PHASE_T0=$SECONDS
}

# fl_end_phase — stop the phase's servers (so every line is in the log).
fl_end_phase() {
    [ ${#FL_PHASE_PIDS[@]} -gt 0 ] && fl_stop "${FL_PHASE_PIDS[@]}"
    FL_PHASE_PIDS=()
}

# fl_matrix FUNC — run FUNC in the three setups. FUNC sees SRV and CLI
# ("pre" or "plain"), FL_PHASE, FL_LOG, and picks its ports with fl_newport;
# after it, the log is checked for every port it picked.
# FL_SETUPS (default "both srv cli") selects setups, e.g. for debugging.
fl_matrix() {
    local func=$1 setup f0
    for setup in ${FL_SETUPS:-both srv cli}; do
        case $setup in
        both) SRV=pre   CLI=pre ;;
        srv)  SRV=pre   CLI=plain ;;
        cli)  SRV=plain CLI=pre ;;
        *)    continue ;;             # a script's own extra setup
        esac
        f0=$FL_FAILS
        fl_phase "$setup"
        "$func"
        fl_end_phase
        if [ ${#FL_PORTS[@]} -eq 0 ]; then
            fl_fail "scenario picked no port"
        else
            case $setup in
            both) fl_expect_fast "${FL_PORTS[@]}" ;;
            srv)  fl_expect_tcp server "${FL_PORTS[@]}" ;;
            cli)  fl_expect_tcp client "${FL_PORTS[@]}" ;;
            esac
        fi
        fl_say "[$setup] $([ $FL_FAILS = "$f0" ] && echo pass || echo FAIL) in $((SECONDS - FL_PHASE_T0))s"
    done
}

# fl_finish — print the verdict and exit 0 (all passed) or 1.
fl_finish() {
    if [ "$FL_FAILS" -eq 0 ]; then
        fl_say "PASS ($((SECONDS - FL_T0))s)"
        exit 0
    fi
    fl_say "FAIL: $FL_FAILS failed check(s) ($((SECONDS - FL_T0))s)"
    exit 1
}

# fl_sha FILE — sha256 of FILE, hex only.
fl_sha() { sha256sum < "$1" | cut -d' ' -f1; }
