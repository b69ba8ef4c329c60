#!/usr/bin/env bash
# bench/run.sh — A/B benchmark of plain loopback TCP against fastloop.
#
#   bench/run.sh [--quick|--full|--smoke] [--transports "tcp uds shm"]
#                [--pin none|same|split] [--out DIR] [--keep-tmp]
#
# Interleaved rounds (round 1: every row, round 2: every row, ...) of
# unmodified tools — iperf3, iperf 2, sockperf, qperf, redis-benchmark,
# nginx+wrk, netperf when present — plus bench's own micro-programs over the
# seed paper's sizes, and bench/micro/conns: CPU of idle connections, memory
# per open connection.  Rows: plain TCP with the system congestion control,
# plain TCP with cubic (where the tool can set it), and each fastloop
# transport (both ends LD_PRELOADed).  Medians with [min–max], ratios against
# the first row, CPU seconds of both ends per GB and per million transactions.
#
# Output: <out>/<host>-<date>[-quick].md, -raw.tsv, -bw.png, -lat.png
# (out = bench/results; smoke: build/bench/smoke).  Exit status: 0, or 1 if
# a tool run failed or a checksum mismatched (never because of speed).
set -u -o pipefail

usage() {
    sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 2
}

ORIG_ARGS=("$@")
MODE=quick
TRANSPORTS="tcp uds shm"
PIN=none
OUT=""
KEEP_TMP=0
while [ $# -gt 0 ]; do
    case $1 in
        --quick) MODE=quick ;;
        --full) MODE=full ;;
        --smoke) MODE=smoke ;;
        --transports) TRANSPORTS=${2:?}; shift ;;
        --transports=*) TRANSPORTS=${1#*=} ;;
        --pin) PIN=${2:?}; shift ;;
        --pin=*) PIN=${1#*=} ;;
        --out) OUT=${2:?}; shift ;;
        --out=*) OUT=${1#*=} ;;
        --keep-tmp) KEEP_TMP=1 ;;
        -h|--help) usage ;;
        *) echo "run.sh: unknown argument '$1'" >&2; usage ;;
    esac
    shift
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
BB=$ROOT/build/bench
T_START=$(date +%s)

# ---------------------------------------------------------------- settings
# Every sockperf client sleeps 2 s before its test (sockperf's own
# sleep(2)), and every server start and stop costs a fraction of a second:
# the smoke run leaves out the repeats of a tool (sockperf throughput, qperf
# tcp_bw, wrk with a connection per request), and the quick run does one
# round, so that they keep their budgets (60 s, 3 min).
case $MODE in
    smoke)
        ROUNDS=1; DUR=1
        I3_TESTS="128K"
        PP_SIZES="64"
        SP_TP=0
        QPERF_TESTS="tcp_lat"
        REDIS_N=5000; REDIS_PN=20000
        WRK_CLOSE=0
        MICRO_SIZES="16K 1M 100M"
        CRR_N=2000
        CONNS_ROUNDS=1; CONNS_IDLE_S=0.5; CONNS_MEM_N=100
        ;;
    quick)
        ROUNDS=1; DUR=1
        I3_TESTS="16K 128K 1M P4 R"
        PP_SIZES="16 256 4096 65536"
        SP_TP=1
        QPERF_TESTS="tcp_lat tcp_bw"
        REDIS_N=20000; REDIS_PN=100000
        WRK_CLOSE=1
        MICRO_SIZES="16K 32K 64K 128K 256K 512K 1M 2M 100M 1G"
        CRR_N=5000
        CONNS_ROUNDS=1; CONNS_IDLE_S=3; CONNS_MEM_N=1000
        ;;
    full)
        ROUNDS=5; DUR=2
        I3_TESTS="16K 128K 1M P4 R"
        PP_SIZES="16 64 256 1024 4096 16384 65536"
        SP_TP=1
        QPERF_TESTS="tcp_lat tcp_bw"
        REDIS_N=100000; REDIS_PN=500000
        WRK_CLOSE=1
        MICRO_SIZES="16K 32K 64K 128K 256K 512K 1M 2M 100M 200M 300M 400M 500M 600M 1G 2G 3G 4G"
        CRR_N=20000
        CONNS_ROUNDS=2; CONNS_IDLE_S=10; CONNS_MEM_N=10000
        ;;
esac
NETPERF_TESTS="TCP_STREAM TCP_MAERTS TCP_RR TCP_CRR"
CONNS_MANY=1000             # the idle test's "many connections"
CONNS_MEM_BYTES=$((1 << 20)) # what each connection of the memory test moves
# Timed repetitions of the micro-programs by size class and mode.
micro_reps() {
    local bytes=$1
    if [ "$bytes" -le $((4 << 20)) ]; then
        [ "$MODE" = smoke ] && echo 5 || echo 20
    elif [ "$bytes" -lt $((1 << 30)) ]; then
        case $MODE in full) echo 5 ;; quick) echo 3 ;; *) echo 2 ;; esac
    else
        case $MODE in full) echo 3 ;; *) echo 2 ;; esac
    fi
}
to_bytes() {
    local v=$1
    case $v in
        *K) echo $(( ${v%K} << 10 )) ;;
        *M) echo $(( ${v%M} << 20 )) ;;
        *G) echo $(( ${v%G} << 30 )) ;;
        *) echo "$v" ;;
    esac
}

case $PIN in
    none) PIN_SERVER=""; PIN_CLIENT="" ;;
    same) PIN_SERVER="taskset -c 0"; PIN_CLIENT="taskset -c 0" ;;
    split) PIN_SERVER="taskset -c 0"; PIN_CLIENT="taskset -c 1" ;;
    *) echo "run.sh: --pin none|same|split" >&2; exit 2 ;;
esac

# ---------------------------------------------------------------- tools
NEED=(iperf3 iperf sockperf qperf redis-server redis-benchmark:redis-tools
      /usr/sbin/nginx:nginx-light wrk gnuplot:gnuplot-nox /usr/bin/time:time
      pgrep:procps ss:iproute2 taskset:util-linux timeout:coreutils)
if ! "$ROOT/scripts/need" "${NEED[@]}"; then
    echo "run.sh: required tools are missing (see above)" >&2
    exit 1
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
"$ROOT/scripts/need" ip:iproute2 unshare:util-linux >/dev/null 2>&1
# netperf is not in Debian: scripts/build-netperf builds it from the upstream
# tarball into build/third_party/netperf/bin (once; later runs find it up to
# date).  Done before entering the private network namespace (apt may be
# needed for autoconf/automake); the re-run inherits the message.
NETPERF_BIN=$ROOT/build/third_party/netperf/bin
if [ -z "${FASTLOOP_BENCH_IN_NETNS:-}" ]; then
    NETPERF_MSG=$(BUILD="$ROOT/build" "$ROOT/scripts/build-netperf" 2>&1 | tail -n 1)
    export NETPERF_MSG
fi
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
maybe_enter_netns "$ROOT/bench/run.sh" "${ORIG_ARGS[@]}"

if [ ! -x "$BB/xfer_tcp" ] || [ ! -x "$BB/xfer_ipc" ] || [ ! -x "$BB/crr" ] ||
   [ ! -x "$BB/conns" ] ||
   [ -n "$(find bench/micro -newer "$BB/xfer_ipc" -name '*.[ch]' 2>/dev/null)" ] ||
   [ -n "$(find bench/micro -newer "$BB/conns" -name 'conns.c' 2>/dev/null)" ]; then
    echo "== building micro-programs into $BB"
    mkdir -p "$BB"
    CF="-O2 -Wall -Wextra -Werror -std=gnu11"
    ${CC:-cc} $CF -o "$BB/xfer_tcp" bench/micro/xfer_tcp.c bench/micro/xfer_common.c || exit 1
    ${CC:-cc} $CF -o "$BB/xfer_ipc" bench/micro/xfer_ipc.c bench/micro/ring.c bench/micro/xfer_common.c || exit 1
    ${CC:-cc} $CF -o "$BB/crr" bench/micro/crr.c || exit 1
    ${CC:-cc} $CF -pthread -o "$BB/conns" bench/micro/conns.c bench/micro/xfer_common.c || exit 1
fi

TMP=$(mktemp -d /tmp/fastloop-bench.XXXXXX) || exit 2
chmod 755 "$TMP"
mkdir -p "$TMP/out"

cleanup() {
    stop_all_servers
    if [ "$KEEP_TMP" = 1 ]; then
        echo "run.sh: kept $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'echo "run.sh: interrupted" >&2; exit 130' INT TERM

REC=$TMP/records.tsv        # round row test metric value
NOTES=$TMP/notes.txt        # free text, one note a line
FAILS=$TMP/failures.txt     # one failure a line
WARNS=$TMP/warnings.txt     # fastloop not engaged etc.
: >"$REC"; : >"$NOTES"; : >"$FAILS"; : >"$WARNS"
ROUND=0

rec() { printf '%s\t%s\t%s\t%s\t%s\n' "$ROUND" "$1" "$2" "$3" "$4" >>"$REC"; }
note() { echo "$*" >>"$NOTES"; }
fail() { echo "$*" >>"$FAILS"; echo "   FAIL: $*" >&2; }
progress() { printf '[%4ds] %s\n' $(( $(date +%s) - T_START )) "$*"; }

# ---------------------------------------------------------------- machine
HOST=$(hostname -s 2>/dev/null || hostname)
DATE=$(date +%Y-%m-%d)
SYSCC=$(cat /proc/sys/net/ipv4/tcp_congestion_control 2>/dev/null || echo unknown)
AVAILCC=$(cat /proc/sys/net/ipv4/tcp_available_congestion_control 2>/dev/null || echo "")
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
NCPU=$(nproc)
KERNEL=$(uname -r)
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- rows
BASE=tcp-$SYSCC
ROWS=("$BASE")
declare -A ROW_LABEL=(["$BASE"]="TCP ($SYSCC)")
CUBIC_ROW=""
if [ "$SYSCC" = cubic ]; then
    note "The system congestion control is already cubic: no separate cubic row."
elif ! modprobe -q tcp_cubic 2>/dev/null && ! grep -qw cubic <<<"$AVAILCC"; then
    note "cubic is not available on this kernel: no cubic row."
else
    CUBIC_ROW=tcp-cubic
    ROWS+=(tcp-cubic)
    ROW_LABEL[tcp-cubic]="TCP (cubic)"
fi
FL_ROWS=()
for t in $TRANSPORTS; do
    case $t in
        tcp) ;;
        uds|shm) FL_ROWS+=("fl-$t") ;;
        *) echo "run.sh: unknown transport '$t' (tcp uds shm)" >&2; exit 2 ;;
    esac
done

# probe_fastloop ROW: both ends preloaded with ROW's transport on a short
# micro transfer; the row is used only if the log shows transport=<kind>.
probe_fastloop() {
    local row=$1 kind=${1#fl-} log=$TMP/probe-$1.log out
    fl_env "$row" "$log"
    : >"$log"
    out=$(timeout -k 3 30 env "${FLENV[@]}" "$BB/xfer_tcp" run -s 64K -r 2 -T 25 -L "$row" 2>&1)
    local rc=$?
    if [ $rc -ne 0 ]; then
        fail "$row probe: xfer_tcp exited $rc: $(echo "$out" | tail -n 2 | tr '\n' ' ')"
        return 1
    fi
    if [ "$(count_transport "$log" "$kind")" -gt 0 ]; then
        return 0
    fi
    local why
    why=$(grep -o 'transport=[a-z]*.*' "$log" | head -n 1)
    note "fastloop-$kind skipped: its setup line (transport=$kind) never showed in FASTLOOP_LOG${why:+ (log says: $why)}."
    return 1
}

lib_id() { [ -f "$LIB" ] && echo "sha256 $(sha256sum "$LIB" | cut -c1-12)…, built $(stat -c %y "$LIB" | cut -d. -f1)"; }
LIB_ID0=$(lib_id)
FL_NOTE=""
if [ ${#FL_ROWS[@]} -gt 0 ]; then
    if [ ! -f "$LIB" ]; then
        FL_NOTE="build/libfastloop.so is missing (run make): fastloop rows skipped."
        note "$FL_NOTE"
        echo "run.sh: $FL_NOTE" >&2
    else
        for r in "${FL_ROWS[@]}"; do
            if probe_fastloop "$r"; then
                ROWS+=("$r")
                ROW_LABEL[$r]="fastloop-${r#fl-}"
            fi
        done
    fi
fi
progress "mode=$MODE rounds=$ROUNDS duration=${DUR}s rows: ${ROWS[*]}"

# ---------------------------------------------------------------- one client run
# run_client ROW TEST SERVER TIMEOUT CMD...: run CMD with ROW's environment
# under /usr/bin/time and timeout; sets CL_RC, CL_OUT, CPU_S (client + server
# CPU seconds), SEGS (TcpOutSegs delta) and records the fastloop connection
# counts for fastloop rows.
run_client() {
    local row=$1 test=$2 srv=$3 tmo=$4; shift 4
    local tag log tf s0 s1 g0 g1 e u s
    tag="$ROUND-$row-${test//[^A-Za-z0-9._-]/_}"
    CL_OUT=$TMP/out/$tag.out
    log=$TMP/out/$tag.fl.log
    CL_LOG=$log
    tf=$TMP/out/$tag.time
    : >"$log"
    local slog=${SRV_LOG[$srv]:-/dev/null} sl0=0
    [ -f "$slog" ] && sl0=$(wc -l <"$slog")
    fl_env "$row" "$log"
    s0=$(server_ticks "$srv")
    g0=$(tcp_outsegs)
    /usr/bin/time -f '%e %U %S' -o "$tf" \
        timeout -k 5 "$tmo" env "${FLENV[@]}" $PIN_CLIENT "$@" >"$CL_OUT" 2>&1 </dev/null
    CL_RC=$?
    g1=$(tcp_outsegs)
    s1=$(server_ticks "$srv")
    read -r e u s < <(tail -n 1 "$tf" 2>/dev/null) || true
    CPU_S=$(awk -v u="${u:-0}" -v s="${s:-0}" -v d=$((s1 - s0)) -v hz="$CLK_TCK" \
        'BEGIN { printf "%.3f", u + s + d / hz }')
    SEGS=$((g1 - g0))
    if [ $CL_RC -eq 124 ] || [ $CL_RC -eq 137 ]; then
        fail "$row $test: timed out after ${tmo}s"
    fi
    case $row in
        fl-*)
            local kind=${row#fl-} fast tcp sfast=0 stcp=0 short
            fast=$(count_transport "$log" "$kind")
            tcp=$(count_long_tcp "$log")
            if [ -f "$slog" ]; then
                sfast=$(tail -n +$((sl0 + 1)) "$slog" | grep -c "transport=$kind")
                stcp=$(tail -n +$((sl0 + 1)) "$slog" | count_long_tcp /dev/stdin)
            fi
            short=$(grep -c "transport=tcp reason=short-lived" "$log" 2>/dev/null)
            [ -f "$slog" ] && short=$((${short:-0} + $(tail -n +$((sl0 + 1)) "$slog" | grep -c "transport=tcp reason=short-lived")))
            rec "$row" "$test" "conns_$kind" $((fast + sfast))
            rec "$row" "$test" "conns_tcp" $((tcp + stcp))
            rec "$row" "$test" "conns_short" "${short:-0}"
            if [ $((fast + sfast)) -eq 0 ] && [ "${short:-0}" -gt 0 ] && [ $((tcp + stcp)) -eq 0 ]; then
                : # every connection was short-lived: TCP by design
            elif [ $((fast + sfast)) -eq 0 ]; then
                echo "$row $test: no transport=$kind connection in the logs (measured plain TCP)" >>"$WARNS"
            elif [ $((tcp + stcp)) -gt 0 ]; then
                echo "$row $test: $((tcp + stcp)) connection(s) stayed TCP: $(grep -h -o 'transport=tcp.*' "$log" "$slog" 2>/dev/null | sort | uniq -c | head -n 2 | tr -s ' \n' ' ')" >>"$WARNS"
            fi
            ;;
    esac
    return 0
}

# cpu_per UNITS DIVISOR: CPU_S / (UNITS / DIVISOR), 3 significant digits.
cpu_per() {
    awk -v c="$CPU_S" -v n="$1" -v d="$2" 'BEGIN { if (n > 0) printf "%.4g", c / (n / d); else print "" }'
}

# ---------------------------------------------------------------- tool tests
# Each takes ROW and records its metrics, or calls fail.

t_iperf3() {   # ROW VARIANT (16K 128K 1M P4 R)
    local row=$1 v=$2 args=(-l 128K) label
    case $v in
        P4) args=(-l 128K -P 4); label="iperf3 -l 128K -P 4" ;;
        R) args=(-l 128K -R); label="iperf3 -l 128K -R" ;;
        *) args=(-l "$v"); label="iperf3 -l $v" ;;
    esac
    [ "$row" = tcp-cubic ] && args+=(-C cubic)
    run_client "$row" "$label" iperf3 $((DUR + 20)) \
        iperf3 -c 127.0.0.1 -p "${PORT[iperf3]}" -t "$DUR" -J "${args[@]}"
    # end.sum_received: bytes and bits_per_second (pretty-printed JSON)
    local parsed bytes bps cc
    parsed=$(awk '/"sum_received"[ \t]*:/ { f = 1 }
                  f && /"bytes"/ { gsub(/[^0-9.]/, "", $2); b = $2 }
                  f && /"bits_per_second"/ { gsub(/[^0-9.eE+]/, "", $2); print b, $2; exit }' "$CL_OUT")
    read -r bytes bps <<<"$parsed"
    if [ $CL_RC -ne 0 ] || [ -z "${bps:-}" ] || grep -q '"error"' "$CL_OUT"; then
        fail "$row $label: iperf3 exit $CL_RC $(grep -o '"error".*' "$CL_OUT" | head -n 1)"
        return
    fi
    rec "$row" "$label" Mbps "$(awk -v b="$bps" 'BEGIN { printf "%.1f", b / 1e6 }')"
    rec "$row" "$label" cpu_s_per_GB "$(cpu_per "$bytes" 1e9)"
    rec "$row" "$label" segs_per_MB "$(awk -v s="$SEGS" -v b="$bytes" 'BEGIN { printf "%.3g", s / (b / 1e6) }')"
    if [ "$row" = tcp-cubic ]; then
        cc=$(grep -o '"receiver_tcp_congestion":[^,]*' "$CL_OUT" | head -n 1 | tr -d '" \t')
        [ -n "$cc" ] && [ "$ROUND" = 1 ] && [ "$v" = 128K ] &&
            note "iperf3 -C cubic: JSON reports sender_tcp_congestion=cubic, ${cc/:/=}."
    fi
}

t_iperf2() {
    local row=$1 args=() label="iperf2 -l 128K"
    [ "$row" = tcp-cubic ] && args=(-Z cubic)
    run_client "$row" "$label" iperf2 $((DUR + 20)) \
        iperf -c 127.0.0.1 -p "${PORT[iperf2]}" -t "$DUR" -l 128K -y C "${args[@]}"
    local line bytes bps
    line=$(grep -E '^[0-9]+,' "$CL_OUT" | tail -n 1)
    bytes=$(cut -d, -f8 <<<"$line")
    bps=$(cut -d, -f9 <<<"$line")
    if [ $CL_RC -ne 0 ] || [ -z "$bps" ] || [ "${bytes:-0}" -le 0 ] 2>/dev/null; then
        fail "$row $label: iperf exit $CL_RC: $(tail -n 1 "$CL_OUT")"
        return
    fi
    rec "$row" "$label" Mbps "$(awk -v b="$bps" 'BEGIN { printf "%.1f", b / 1e6 }')"
    rec "$row" "$label" cpu_s_per_GB "$(cpu_per "$bytes" 1e9)"
    rec "$row" "$label" segs_per_MB "$(awk -v s="$SEGS" -v b="$bytes" 'BEGIN { printf "%.3g", s / (b / 1e6) }')"
}

t_sockperf_pp() {   # ROW SIZE
    local row=$1 m=$2 label="sockperf pp $2 B"
    run_client "$row" "$label" sockperf $((DUR + 20)) \
        sockperf ping-pong -i 127.0.0.1 -p "${PORT[sockperf]}" --tcp -m "$m" -t "$DUR"
    local avg p50 p99 p999 n
    avg=$(sed -n 's/.*Summary: Latency is \([0-9.]*\) usec.*/\1/p' "$CL_OUT" | head -n 1)
    p50=$(awk '/percentile 50.000 =/ { print $NF; exit }' "$CL_OUT")
    p99=$(awk '/percentile 99.000 =/ { print $NF; exit }' "$CL_OUT")
    p999=$(awk '/percentile 99.900 =/ { print $NF; exit }' "$CL_OUT")
    n=$(sed -n 's/.*\[Total Run\].*ReceivedMessages=\([0-9]*\).*/\1/p' "$CL_OUT" | head -n 1)
    if [ $CL_RC -ne 0 ] || [ -z "$avg" ] || [ -z "$p999" ] || grep -q 'ERROR' "$CL_OUT"; then
        fail "$row $label: sockperf exit $CL_RC: $(grep -m1 -o 'ERROR.*' "$CL_OUT")"
        return
    fi
    rec "$row" "$label" avg_us "$avg"
    rec "$row" "$label" p50_us "$p50"
    rec "$row" "$label" p99_us "$p99"
    rec "$row" "$label" p99.9_us "$p999"
    rec "$row" "$label" cpu_s_per_Mtx "$(cpu_per "${n:-0}" 1e6)"
    rec "$row" "$label" segs_per_tx "$(awk -v s="$SEGS" -v n="${n:-0}" 'BEGIN { if (n) printf "%.3g", s / n }')"
}

t_sockperf_tp() {
    local row=$1 label="sockperf tp 16 KiB"
    run_client "$row" "$label" sockperf $((DUR + 20)) \
        sockperf throughput -i 127.0.0.1 -p "${PORT[sockperf]}" --tcp -m 16384 -t "$DUR"
    local mbps rate
    mbps=$(sed -n 's/.*BandWidth is [0-9.]* MBps (\([0-9.]*\) Mbps).*/\1/p' "$CL_OUT" | head -n 1)
    rate=$(sed -n 's/.*Message Rate is \([0-9]*\) \[msg\/sec\].*/\1/p' "$CL_OUT" | head -n 1)
    if [ $CL_RC -ne 0 ] || [ -z "$mbps" ] || grep -q 'ERROR' "$CL_OUT"; then
        fail "$row $label: sockperf exit $CL_RC: $(grep -m1 -o 'ERROR.*' "$CL_OUT")"
        return
    fi
    rec "$row" "$label" Mbps "$mbps"
    # bytes sent = rate * 16384 * run time (sockperf's rate is over the run)
    rec "$row" "$label" cpu_s_per_GB "$(cpu_per "$(awk -v r="$rate" -v d="$DUR" 'BEGIN { printf "%.0f", r * 16384 * d }')" 1e9)"
}

t_qperf() {   # ROW tcp_lat|tcp_bw
    local row=$1 t=$2 label="qperf $2"
    run_client "$row" "$label" qperf $((DUR + 20)) \
        qperf 127.0.0.1 -lp "${PORT[qperf]}" -ip "${PORT[qperf_data]}" -t "$DUR" "$t"
    local val unit
    if [ "$t" = tcp_lat ]; then
        read -r val unit < <(awk '/latency *=/ { print $3, $4; exit }' "$CL_OUT")
    else
        read -r val unit < <(awk '/bw *=/ { print $3, $4; exit }' "$CL_OUT")
    fi
    if [ $CL_RC -ne 0 ] || [ -z "${val:-}" ]; then
        fail "$row $label: qperf exit $CL_RC: $(tail -n 1 "$CL_OUT")"
        return
    fi
    val=${val//,/}
    if [ "$t" = tcp_lat ]; then
        local us
        us=$(awk -v v="$val" -v u="$unit" 'BEGIN { f = (u == "ns") ? 0.001 : (u == "ms") ? 1000 : (u == "sec" || u == "s") ? 1e6 : 1; printf "%.3f", v * f }')
        rec "$row" "$label" avg_us "$us"
        # qperf reports one-way latency (half a round trip): transactions
        # (round trips) in the run = DUR / (2 * latency).
        rec "$row" "$label" cpu_s_per_Mtx "$(cpu_per "$(awk -v d="$DUR" -v l="$us" 'BEGIN { printf "%.0f", d / (2 * l * 1e-6) }')" 1e6)"
    else
        local mbps
        mbps=$(awk -v v="$val" -v u="$unit" 'BEGIN { f = (u ~ /^GB/) ? 8000 : (u ~ /^MB/) ? 8 : (u ~ /^KB/) ? 0.008 : 8e-6; printf "%.1f", v * f }')
        rec "$row" "$label" Mbps "$mbps"
        rec "$row" "$label" cpu_s_per_GB "$(cpu_per "$(awk -v m="$mbps" -v d="$DUR" 'BEGIN { printf "%.0f", m * 1e6 / 8 * d }')" 1e9)"
    fi
}

t_redis() {   # ROW PIPELINE(1|16)
    local row=$1 p=$2 n label
    if [ "$p" = 1 ]; then n=$REDIS_N; label="redis-benchmark"; else n=$REDIS_PN; label="redis-benchmark -P $p"; fi
    run_client "$row" "$label" redis $((120)) \
        redis-benchmark -h 127.0.0.1 -p "${PORT[redis]}" -t get,set -n "$n" -P "$p" --csv
    local set get setp50 getp50 setp99 getp99
    set=$(awk -F'","' '/^"SET"/ { print $2 }' "$CL_OUT")
    get=$(awk -F'","' '/^"GET"/ { print $2 }' "$CL_OUT")
    setp50=$(awk -F'","' '/^"SET"/ { print $5 * 1000 }' "$CL_OUT")
    getp50=$(awk -F'","' '/^"GET"/ { print $5 * 1000 }' "$CL_OUT")
    setp99=$(awk -F'","' '/^"SET"/ { print $7 * 1000 }' "$CL_OUT")
    getp99=$(awk -F'","' '/^"GET"/ { print $7 * 1000 }' "$CL_OUT")
    if [ $CL_RC -ne 0 ] || [ -z "$set" ] || [ -z "$get" ]; then
        fail "$row $label: redis-benchmark exit $CL_RC: $(tail -n 1 "$CL_OUT")"
        return
    fi
    rec "$row" "$label SET" rps "$set"
    rec "$row" "$label GET" rps "$get"
    rec "$row" "$label SET" p50_us "$setp50"
    rec "$row" "$label SET" p99_us "$setp99"
    rec "$row" "$label GET" p50_us "$getp50"
    rec "$row" "$label GET" p99_us "$getp99"
    rec "$row" "$label GET+SET" cpu_s_per_Mtx "$(cpu_per $((2 * n)) 1e6)"
    rec "$row" "$label GET+SET" segs_per_tx "$(awk -v s="$SEGS" -v n=$((2 * n)) 'BEGIN { printf "%.3g", s / n }')"
}

t_wrk() {
    local row=$1 label="nginx+wrk 1 KiB"
    run_client "$row" "$label" nginx $((DUR + 20)) \
        wrk -t 2 -c 32 -d "${DUR}s" --latency "http://127.0.0.1:${PORT[nginx]}/1k.bin"
    local rps n p50 p99 errs
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$CL_OUT")
    n=$(awk '/requests in/ { print $1; exit }' "$CL_OUT")
    to_us() { awk -v v="$1" 'BEGIN { u = v; sub(/[0-9.]+/, "", u); x = v + 0;
        f = (u == "us") ? 1 : (u == "ms") ? 1000 : (u == "s") ? 1e6 : 1; printf "%.1f", x * f }'; }
    p50=$(awk '$1 == "50%" { print $2; exit }' "$CL_OUT")
    p99=$(awk '$1 == "99%" { print $2; exit }' "$CL_OUT")
    errs=$(grep -E 'Non-2xx|Socket errors' "$CL_OUT")
    if [ $CL_RC -ne 0 ] || [ -z "$rps" ] || [ -n "$errs" ]; then
        fail "$row $label: wrk exit $CL_RC ${errs:-$(tail -n 1 "$CL_OUT")}"
        return
    fi
    rec "$row" "$label" rps "$rps"
    rec "$row" "$label" p50_us "$(to_us "$p50")"
    rec "$row" "$label" p99_us "$(to_us "$p99")"
    rec "$row" "$label" cpu_s_per_Mtx "$(cpu_per "$n" 1e6)"
    rec "$row" "$label" segs_per_tx "$(awk -v s="$SEGS" -v n="$n" 'BEGIN { if (n) printf "%.3g", s / n }')"
}

# nginx+wrk with "Connection: close": one TCP connection per request
t_wrk_close() {
    local row=$1 label="nginx+wrk 1 KiB, conn/req" rps n errs
    run_client "$row" "$label" nginx $((DUR + 20)) \
        wrk -t 2 -c 10 -d "${DUR}s" -H "Connection: close" "http://127.0.0.1:${PORT[nginx]}/1k.bin"
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$CL_OUT")
    n=$(awk '/requests in/ { print $1; exit }' "$CL_OUT")
    errs=$(grep -E 'Non-2xx|Socket errors' "$CL_OUT")
    if [ $CL_RC -ne 0 ] || [ -z "$rps" ] || [ -n "$errs" ]; then
        fail "$row $label: wrk exit $CL_RC ${errs:-$(tail -n 1 "$CL_OUT")}"
        return
    fi
    rec "$row" "$label" rps "$rps"
    rec "$row" "$label" cpu_s_per_Mtx "$(cpu_per "$n" 1e6)"
}

# Connection rate, one at a time: connect, 1 B, 1 B, close (bench/micro/crr)
t_crr() {
    local row=$1 label="connect+1B+1B+close" rate secs
    run_client "$row" "$label" none $((CRR_N / 500 + 60)) "$BB/crr" run -n "$CRR_N"
    rate=$(awk '/^conns/ { print $6 }' "$CL_OUT")
    secs=$(awk '/^conns/ { print $4 }' "$CL_OUT")
    if [ $CL_RC -ne 0 ] || [ -z "$rate" ]; then
        fail "$row $label: crr exit $CL_RC $(tail -n 1 "$CL_OUT")"
        return
    fi
    rec "$row" "$label" conn_per_s "$rate"
    rec "$row" "$label" secs "$secs"
    rec "$row" "$label" cpu_s_per_Mtx "$(cpu_per "$CRR_N" 1e6)"
}

# TCP_STREAM sends client to server, TCP_MAERTS server to client.  TCP_CRR
# runs a fixed count of transactions (-l -CRR_N): after a timed CRR run,
# netserver sits in accept() until its own timer (the run time plus 4 s of
# padding) expires, so a timed run would cost 4 s more each time.
t_netperf() {   # ROW TEST(TCP_STREAM|TCP_MAERTS|TCP_RR|TCP_CRR)
    local row=$1 t=$2 label="netperf $2" v len=$DUR tmo=$((DUR + 20)) n ts=()
    if [ "$t" = TCP_CRR ]; then
        len=-$CRR_N
        tmo=$((CRR_N / 500 + 60))
        ts=(-- -p "$(crr_ports)")
    fi
    run_client "$row" "$label" netperf "$tmo" \
        netperf -H 127.0.0.1 -p "${PORT[netperf]}" -l "$len" -t "$t" -P 0 -v 0 "${ts[@]}"
    v=$(awk 'NF { x = $NF } END { print x }' "$CL_OUT")
    if [ $CL_RC -ne 0 ] || ! [[ $v =~ ^[0-9.]+$ ]]; then
        fail "$row $label: netperf exit $CL_RC: $(tail -n 1 "$CL_OUT")"
        return
    fi
    case $t in
        TCP_STREAM|TCP_MAERTS)
            rec "$row" "$label" Mbps "$v"   # netperf default unit: 10^6 bits/s
            rec "$row" "$label" cpu_s_per_GB "$(cpu_per "$(awk -v m="$v" -v d="$DUR" 'BEGIN { printf "%.0f", m * 1e6 / 8 * d }')" 1e9)"
            rec "$row" "$label" segs_per_MB "$(awk -v s="$SEGS" -v m="$v" -v d="$DUR" 'BEGIN { b = m * 1e6 / 8 * d; if (b > 0) printf "%.3g", s / (b / 1e6) }')"
            ;;
        *)
            n=$(awk -v r="$v" -v d="$DUR" 'BEGIN { printf "%.0f", r * d }')
            [ "$t" = TCP_CRR ] && n=$CRR_N
            rec "$row" "$label" tps "$v"
            rec "$row" "$label" cpu_s_per_Mtx "$(cpu_per "$n" 1e6)"
            ;;
    esac
}

HAVE_NETPERF=0
[ -x "$NETPERF_BIN/netperf" ] && [ -x "$NETPERF_BIN/netserver" ] && PATH=$NETPERF_BIN:$PATH
if command -v netperf >/dev/null 2>&1 && command -v netserver >/dev/null 2>&1; then
    HAVE_NETPERF=1
    note "netperf: $(netperf -V 2>&1 | head -n 1), unmodified, $(command -v netperf)."
else
    echo "skipped: netperf not found (${NETPERF_MSG:-})"
    note "netperf: skipped: not built (it is not packaged in Debian; scripts/build-netperf builds it from the upstream tarball): ${NETPERF_MSG:-}"
fi

# ---------------------------------------------------------------- servers
declare -A PORT=()
NGX_DIR=$TMP/nginx
mkdir -p "$NGX_DIR/www"
head -c 1024 /dev/urandom >"$NGX_DIR/www/1k.bin"
chmod -R a+rX "$NGX_DIR"


# srv_<name> ROW: start one server on a fresh port (fail is recorded by
# the caller).  ensure_server restarts one that died during a run, so one
# crash does not fail every later test of that tool.
srv_iperf3() {
    free_port && PORT[iperf3]=$FREE_PORT &&
        start_server iperf3 "$1" "${PORT[iperf3]}" iperf3 -s -B 127.0.0.1 -p "${PORT[iperf3]}"
}
srv_iperf2() {
    local ccarg=()
    [ "$1" = tcp-cubic ] && ccarg=(-Z cubic)
    free_port && PORT[iperf2]=$FREE_PORT &&
        start_server iperf2 "$1" "${PORT[iperf2]}" iperf -s -B 127.0.0.1 -p "${PORT[iperf2]}" "${ccarg[@]}"
}
srv_sockperf() {
    free_port && PORT[sockperf]=$FREE_PORT &&
        start_server sockperf "$1" "${PORT[sockperf]}" \
            sockperf server -i 127.0.0.1 -p "${PORT[sockperf]}" --tcp -m 65536
}
srv_qperf() {
    free_port && PORT[qperf]=$FREE_PORT && free_port && PORT[qperf_data]=$FREE_PORT &&
        start_server qperf "$1" "${PORT[qperf]}" qperf -lp "${PORT[qperf]}"
}
srv_redis() {
    free_port && PORT[redis]=$FREE_PORT &&
        start_server redis "$1" "${PORT[redis]}" \
            redis-server --port "${PORT[redis]}" --bind 127.0.0.1 --save "" --appendonly no \
            --daemonize no --protected-mode no --dir "$TMP" --logfile "$TMP/redis.log"
}
srv_nginx() {
    free_port && PORT[nginx]=$FREE_PORT && write_nginx_conf "$NGX_DIR" "${PORT[nginx]}" &&
        start_server nginx "$1" "${PORT[nginx]}" "$NGINX" -c "$NGX_DIR/nginx.conf" -p "$NGX_DIR"
}
srv_netperf() {
    free_port && PORT[netperf]=$FREE_PORT &&
        start_server netperf "$1" "${PORT[netperf]}" netserver -D -L 127.0.0.1 -p "${PORT[netperf]}"
}

# start_row_servers ROW: the servers ROW needs (tcp-cubic: only those of
# tools that can set the congestion control), all started, then awaited.
start_row_servers() {
    local row=$1 s list="iperf3 iperf2 sockperf qperf redis nginx" ok=()
    [ $HAVE_NETPERF = 1 ] && list+=" netperf"
    [ "$row" = tcp-cubic ] && list="iperf3 iperf2"
    SRV_DEFER_WAIT=1
    for s in $list; do
        if "srv_$s" "$row"; then ok+=("$s"); else fail "$row: $s server did not start"; fi
    done
    SRV_DEFER_WAIT=
    for s in "${ok[@]}"; do
        await_server "$s" || fail "$row: $s server did not start"
    done
}

# ensure_server NAME ROW: true if NAME runs; restarts it once if it died.
ensure_server() {
    local name=$1 row=$2 pid=${SRV_PID[$1]:-}
    [ -z "$pid" ] && return 1
    kill -0 "$pid" 2>/dev/null && return 0
    wait "$pid" 2>/dev/null
    local st=$?
    fail "$row: $name server died (exit $st): $(tail -n 2 "$TMP/srv-$name.out" | tr '\n' ' ')"
    unset 'SRV_PID[$name]'
    "srv_$name" "$row" || { fail "$row: $name server did not restart"; return 1; }
    return 0
}

run_row_tests() {
    local row=$1 v
    for v in $I3_TESTS; do ensure_server iperf3 "$row" && t_iperf3 "$row" "$v"; done
    ensure_server iperf2 "$row" && t_iperf2 "$row"
    [ "$row" = tcp-cubic ] && return
    for v in $PP_SIZES; do ensure_server sockperf "$row" && t_sockperf_pp "$row" "$v"; done
    [ "$SP_TP" = 1 ] && ensure_server sockperf "$row" && t_sockperf_tp "$row"
    for v in $QPERF_TESTS; do ensure_server qperf "$row" && t_qperf "$row" "$v"; done
    ensure_server redis "$row" && t_redis "$row" 1
    ensure_server redis "$row" && t_redis "$row" 16
    ensure_server nginx "$row" && t_wrk "$row"
    [ "$WRK_CLOSE" = 1 ] && ensure_server nginx "$row" && t_wrk_close "$row"
    t_crr "$row"
    if [ $HAVE_NETPERF = 1 ]; then
        for v in $NETPERF_TESTS; do ensure_server netperf "$row" && t_netperf "$row" "$v"; done
    fi
    # servers that died after the last test
    for v in "${!SRV_PID[@]}"; do ensure_server "$v" "$row" >/dev/null; done
}

# ---------------------------------------------------------------- micro sweep
# Rows of the sweep: the TCP rows and fastloop rows through xfer_tcp, then
# the raw ceilings through xfer_ipc.  Interleaved: for each size, each row.
MICRO_ROWS=("${ROWS[@]}" uds pipe shm memcpy)
micro_one() {   # ROW SIZE
    local row=$1 size=$2 bytes reps out log rc tmo kind
    bytes=$(to_bytes "$size")
    reps=$(micro_reps "$bytes")
    # generous bound: 1 + reps transfers at >= 200 Mbit/s, plus 60 s
    tmo=$(( (bytes / 25000000 + 1) * (reps + 1) + 60 ))
    log=$TMP/out/micro-$row-$size.fl.log
    : >"$log"
    case $row in
        tcp-cubic) out=$(timeout -k 5 $((tmo + 10)) "$BB/xfer_tcp" run -s "$size" -r "$reps" -T "$tmo" --cc cubic -L "$row" 2>&1) ;;
        tcp-*) out=$(timeout -k 5 $((tmo + 10)) "$BB/xfer_tcp" run -s "$size" -r "$reps" -T "$tmo" -L "$row" 2>&1) ;;
        fl-*) fl_env "$row" "$log"
              out=$(timeout -k 5 $((tmo + 10)) env "${FLENV[@]}" "$BB/xfer_tcp" run -s "$size" -r "$reps" -T "$tmo" -L "$row" 2>&1) ;;
        *) out=$(timeout -k 5 $((tmo + 10)) "$BB/xfer_ipc" "$row" -s "$size" -r "$reps" -T "$tmo" 2>&1) ;;
    esac
    rc=$?
    local line
    line=$(grep -P '^xfer\t' <<<"$out" | tail -n 1)
    if [ $rc -ne 0 ] || [ -z "$line" ] || [ "$(cut -f10 <<<"$line")" != ok ]; then
        fail "micro $row $size: exit $rc $(grep -v -P '^xfer\t' <<<"$out" | tail -n 2 | tr '\n' ' ')$(cut -f10 <<<"$line")"
        return
    fi
    rec "$row" "xfer $bytes" reps "$(cut -f4 <<<"$line")"
    rec "$row" "xfer $bytes" Mbps "$(cut -f5 <<<"$line")"
    rec "$row" "xfer $bytes" Mbps_min "$(cut -f6 <<<"$line")"
    rec "$row" "xfer $bytes" Mbps_max "$(cut -f7 <<<"$line")"
    rec "$row" "xfer $bytes" cpu_s_per_GB "$(cut -f9 <<<"$line")"
    case $row in
        fl-*) kind=${row#fl-}
              if [ "$(count_transport "$log" "$kind")" -eq 0 ]; then
                  rec "$row" "xfer $bytes" fallback 1
                  echo "micro $row $size: no transport=$kind in the log (measured plain TCP): $(grep -h -o 'transport=tcp.*' "$log" | sort -u | tr '\n' ' ')" >>"$WARNS"
              fi ;;
    esac
}

ROUND=0
progress "micro sweep: sizes $MICRO_SIZES; rows ${MICRO_ROWS[*]}"
for size in $MICRO_SIZES; do
    for row in "${MICRO_ROWS[@]}"; do
        micro_one "$row" "$size"
    done
    progress "  micro $size done ($(micro_reps "$(to_bytes "$size")") timed repetitions each)"
done
# The ring must also be correct (and bounded) with both processes on one
# core and a ring smaller than a write; every byte compared.
if out=$(timeout -k 5 120 taskset -c 0 "$BB/xfer_ipc" shm -s 1M -r 3 -R 4K -V -T 100 2>&1) &&
   grep -qP '\tok$' <<<"$out"; then
    note "shm ring check: both processes on CPU 0, 4 KiB ring, 1 MiB x 4, every byte compared: ok ($(cut -f5 <<<"$out") Mbit/s)."
else
    fail "shm ring check on one core: $(tail -n 2 <<<"$out" | tr '\n' ' ')"
fi
# The checker must catch a single flipped byte (a test that cannot fail
# would prove nothing about the rows above).
out=$(timeout -k 5 60 "$BB/xfer_ipc" uds -s 1M -r 2 -X 12345 -T 50 2>&1)
if [ $? -eq 1 ] && grep -q checksum-mismatch <<<"$out"; then
    note "checksum self-test: a single byte flipped by the sender was reported as checksum-mismatch: ok."
else
    fail "checksum self-test: a flipped byte was not detected: $(tail -n 2 <<<"$out" | tr '\n' ' ')"
fi

# ---------------------------------------------------------------- tool rounds
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    for row in "${ROWS[@]}"; do
        progress "round $ROUND/$ROUNDS: ${ROW_LABEL[$row]}"
        start_row_servers "$row"
        run_row_tests "$row"
        stop_all_servers
    done
done
ROUND=0

# ---------------------------------------------------------------- connections
# bench/micro/conns, for the TCP baseline and each fastloop row: what an
# open connection costs while idle (CPU of both processes, as % of one
# core, for 1 and for CONNS_MANY connections) and while open (memory per
# connection, CONNS_MEM_N connections that each moved 1 MiB).  The stated
# targets go to $TARGETS, a miss is a warning (a number never fails a run;
# a failed connection or a wrong checksum does).
TARGETS=$TMP/targets.md
: >"$TARGETS"
CONNS_ROWS=("$BASE")
for r in "${ROWS[@]}"; do
    case $r in fl-*) CONNS_ROWS+=("$r") ;; esac
done

# ring_bytes: FASTLOOP_RING as the library reads it (strtol base 0, K/M
# suffix, a power of two in 4 KiB … 64 MiB), or its default 262144.
ring_bytes() {
    local v=${FASTLOOP_RING:-} mul=1 n
    [ -z "$v" ] && { echo 262144; return; }
    case $v in
        *[kK]) mul=1024; v=${v%?} ;;
        *[mM]) mul=1048576; v=${v%?} ;;
    esac
    if [[ $v =~ ^(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$ ]] && [ ${#v} -le 10 ]; then
        n=$(( v * mul ))
        if [ "$n" -ge 4096 ] && [ "$n" -le $((64 << 20)) ] && [ $(( n & (n - 1) )) -eq 0 ]; then
            echo "$n"
            return
        fi
    fi
    note "FASTLOOP_RING=$FASTLOOP_RING is not a ring size the library accepts (it keeps its default): the bound uses 262144."
    echo 262144
}
RING=$(ring_bytes)
SEG_BOUND=$((2 * RING + 4096))

# conns_metric NAME: the value of "metric NAME V" in the last conns output.
conns_metric() { awk -v k="$1" '$1 == "metric" && $2 == k { print $3; exit }' "$CL_OUT"; }

# target LABEL ROW MEASURED OK(1|0) WHY: one line of the targets table; a
# miss is also a warning.
target() {
    local rnd=""
    [ "$CONNS_ROUNDS" -gt 1 ] && rnd=" (round $ROUND)"
    printf '| %s%s | %s | %s | %s |\n' "$1" "$rnd" "${ROW_LABEL[$2]}" "$3" \
        "$( [ "$4" = 1 ] && echo within || echo "**exceeded**" )" >>"$TARGETS"
    [ "$4" = 1 ] || echo "${ROW_LABEL[$2]}: $1$rnd: $5" >>"$WARNS"
}

# t_conns ROW LABEL CONNS BYTES IDLE_S
t_conns() {
    local row=$1 label=$2 n=$3 b=$4 idle=$5 per=1 tmo out kind fast
    [ "$row" = fl-shm ] && per=2    # each end also holds the ring's memfd
    if ! out=$("$BB/conns" limits -n "$n" -f "$per" 2>&1); then
        note "$label, ${ROW_LABEL[$row]}: skipped: ${out#skip: }"
        printf '| %s | %s | skipped: %s | — |\n' "$label" "${ROW_LABEL[$row]}" "${out#skip: }" >>"$TARGETS"
        echo "   skipped: $row $label: ${out#skip: }"
        return
    fi
    tmo=$(awk -v n="$n" -v b="$b" -v i="$idle" 'BEGIN { printf "%d", n / 200 + n * b / 1e8 + i + 60 }')
    # what an idle fast connection costs: each switches in accept (three
    # calls would leave it on TCP, by design, with the default)
    FL_EXTRA=(FASTLOOP_SWITCH_AFTER=0)
    run_client "$row" "$label" none "$tmo" \
        "$BB/conns" run -n "$n" -b "$b" -i "$idle" -f "$per" -T $((tmo - 5))
    FL_EXTRA=()
    if [ $CL_RC -ne 0 ] || ! grep -q '^result ok' "$CL_OUT"; then
        fail "$row $label: conns exit $CL_RC: $(grep -v '^metric' "$CL_OUT" | tail -n 3 | tr '\n' ' ')"
        return
    fi
    case $row in
        fl-*) kind=${row#fl-}
              fast=$(count_transport "$CL_LOG" "$kind")
              [ "$fast" -lt $((2 * n)) ] &&
                  echo "$row $label: only $fast of $((2 * n)) connection ends logged transport=$kind" >>"$WARNS" ;;
    esac
    if [ "$idle" != 0 ]; then
        local pct pctns wk
        pct=$(conns_metric idle_cpu_pct)
        pctns=$(conns_metric idle_cpu_pct_ns)
        wk=$(conns_metric idle_wakeups_client)
        wk=$(( ${wk:-0} + $(conns_metric idle_wakeups_server | grep -x '[0-9]*' || echo 0) ))
        rec "$row" "$label" idle_pct "$pct"
        [ -n "$pctns" ] && rec "$row" "$label" idle_pct_ns "$pctns"
        rec "$row" "$label" idle_wakeups "$wk"
        progress "  $label, ${ROW_LABEL[$row]}: ${pct} % of a core (schedstat ${pctns:-n/a} %), $wk wakeups"
        # The verdict uses the ns figure where there is one: a 10 ms tick
        # is 1 % of a 1 s window.
        target "$n idle connection$([ "$n" -gt 1 ] && echo s) < 1 % of a core$([ "$n" -gt 1 ] && echo " in total"), ${idle} s" \
            "$row" "$pct % (schedstat ${pctns:-n/a} %), $wk wakeups" \
            "$(awk -v p="${pctns:-$pct}" 'BEGIN { print (p < 1) ? 1 : 0 }')" \
            "${pctns:-$pct} % of a core over ${idle} s"
        [ "$wk" -gt 0 ] &&
            echo "${ROW_LABEL[$row]}: $label: $wk wakeup(s) on connections nobody wrote to" >>"$WARNS"
        return
    fi
    local shm pss_shm seg avail pss fds
    shm=$(conns_metric shmem_per_conn)
    shm=${shm:-0}
    pss_shm=$(conns_metric pss_shmem_per_conn)
    seg=$(conns_metric memfd_bytes_per_conn)
    seg=${seg:-0}
    avail=$(conns_metric memavail_per_conn)
    pss=$(conns_metric pss_per_conn)
    fds=$(awk -v c="$(conns_metric fds_client)" -v s="$(conns_metric fds_server)" -v n="$n" \
        'BEGIN { printf "%.2f", (c + s) / (2 * n) }')
    rec "$row" "$label" shmem_B "$shm"
    [ -n "$pss_shm" ] && rec "$row" "$label" pss_shmem_B "$pss_shm"
    rec "$row" "$label" seg_B "$seg"
    rec "$row" "$label" memavail_B "$avail"
    rec "$row" "$label" pss_B "$pss"
    rec "$row" "$label" fds_conn "$fds"
    progress "  $label, ${ROW_LABEL[$row]}: per connection: Shmem $shm B, Pss_Shmem ${pss_shm:-n/a} B, segment $seg B, MemAvailable $avail B, PSS $pss B, $fds fds each end"
    if [ "$row" = fl-shm ]; then
        local worst=$shm what
        what="Shmem (system-wide) $shm B"
        [ -n "$pss_shm" ] && [ "$pss_shm" -gt "$worst" ] && { worst=$pss_shm; what="Pss_Shmem $pss_shm B"; }
        [ "$seg" -gt "$worst" ] && { worst=$seg; what="the segment mapping $seg B"; }
        [ "$seg" -ne "$SEG_BOUND" ] &&
            note "conns: the segment mapped per connection is $seg B, not 2 × $RING + 4096 = $SEG_BOUND B (is FASTLOOP_RING set the way the harness read it?)."
        target "shared memory per connection ≤ 2 × ring + 4 KiB = $SEG_BOUND B ($n connections × $((b >> 20)) MiB)" \
            "$row" "Shmem $shm B, Pss_Shmem ${pss_shm:-n/a} B, segment $seg B" \
            "$([ "$worst" -le "$SEG_BOUND" ] && echo 1 || echo 0)" \
            "$what per connection exceeds 2 × $RING + 4096 = $SEG_BOUND B"
        progress "  bound 2 × $RING + 4096 = $SEG_BOUND B per connection: $([ "$worst" -le "$SEG_BOUND" ] && echo within || echo "EXCEEDED ($what)")"
    fi
}

for ((ROUND = 1; ROUND <= CONNS_ROUNDS; ROUND++)); do
    progress "connections $ROUND/$CONNS_ROUNDS: idle 1 and $CONNS_MANY (${CONNS_IDLE_S} s), memory of $CONNS_MEM_N × 1 MiB; rows ${CONNS_ROWS[*]}"
    for row in "${CONNS_ROWS[@]}"; do
        t_conns "$row" "idle, 1 conn" 1 4096 "$CONNS_IDLE_S"
        t_conns "$row" "idle, $CONNS_MANY conns" "$CONNS_MANY" 4096 "$CONNS_IDLE_S"
        t_conns "$row" "$CONNS_MEM_N conns × 1 MiB, open" "$CONNS_MEM_N" "$CONNS_MEM_BYTES" 0
    done
done
ROUND=0

# ---------------------------------------------------------------- report
LIB_ID1=$(lib_id)
if [ "${#FL_ROWS[@]}" -gt 0 ] && [ "$LIB_ID0" != "$LIB_ID1" ]; then
    echo "build/libfastloop.so changed during the run ($LIB_ID0 → $LIB_ID1): fastloop rows mix two builds" >>"$WARNS"
fi
if [ -z "$OUT" ]; then
    if [ "$MODE" = smoke ]; then OUT=$ROOT/build/bench/smoke; else OUT=$ROOT/bench/results; fi
fi
mkdir -p "$OUT"
SUFFIX=""
[ "$MODE" != full ] && SUFFIX="-$MODE"
BASENAME=$HOST-$DATE$SUFFIX
MD=$OUT/$BASENAME.md
cp "$REC" "$OUT/$BASENAME-raw.tsv"

ROWSPEC=""
for r in "${ROWS[@]}"; do ROWSPEC+="$r=${ROW_LABEL[$r]};"; done
CONNS_ROWSPEC=""
for r in "${CONNS_ROWS[@]}"; do CONNS_ROWSPEC+="$r=${ROW_LABEL[$r]};"; done
MROWSPEC=$ROWSPEC
for r in uds pipe shm memcpy; do
    case $r in
        uds) l="raw UDS" ;; pipe) l="raw pipe" ;; shm) l="raw shm ring" ;; memcpy) l="memcpy" ;;
    esac
    MROWSPEC+="$r=$l;"
done

ELAPSED=$(( $(date +%s) - T_START ))
{
    echo "# fastloop benchmark — $HOST, $DATE ($MODE)"
    echo
    echo "## Machine and settings"
    echo
    echo "| | |"
    echo "|---|---|"
    echo "| CPU | $CPU_MODEL, $NCPU online CPUs |"
    echo "| kernel | $KERNEL |"
    echo "| TCP congestion control | system: **$SYSCC** (available: $AVAILCC) |"
    echo "| fastloop | $( [ -f "$LIB" ] && echo "build/libfastloop.so ($LIB_ID0); rows: FASTLOOP_TRANSPORT=uds/shm, FASTLOOP_LOG=info, both ends LD_PRELOADed" || echo "not built — fastloop rows skipped")$( [ -d .git ] && echo "; tree $(git rev-parse --short HEAD 2>/dev/null || echo uncommitted)") |"
    echo "| rows | $(for r in "${ROWS[@]}"; do printf '%s\n' "${ROW_LABEL[$r]}"; done | paste -sd';' | sed 's/;/; /g') |"
    echo "| rounds | $ROUNDS interleaved (each round: every row in turn), ${DUR} s per tool run; cells: median [min–max] over rounds |"
    echo "| pinning | $PIN |"
    echo "| network | $NETNS_NOTE |"
    echo "| load average at start | $LOADAVG |"
    echo "| wall time | ${ELAPSED} s |"
    echo
    awk -v mode=tools -v rows="$ROWSPEC" -v base="$BASE" -v cubic="$CUBIC_ROW" \
        -f "$ROOT/bench/report.awk" "$REC"
    echo
    echo "## Connections: idle CPU and memory per connection"
    echo
    echo "bench/micro/conns: a client and a server process (fork+exec, both under the row's environment). Idle: 1 and $CONNS_MANY connections, each first moves 4 KiB (so it has switched), then both ends wait (the server in epoll_wait, the client in one poll) and a thread of the client measures over ${CONNS_IDLE_S} s, from 100 ms after the poll began; CPU is utime+stime of both processes from /proc/PID/stat (10 ms ticks) and, finer, the threads' schedstat run time, as % of one core. Memory: $CONNS_MEM_N connections each move 1 MiB client → server (hash checked), then, with all open, the deltas against a snapshot taken before the first connect: /proc/meminfo Shmem and MemAvailable (system-wide, so other activity on the machine shows too), and the sum of both processes' Pss and Pss_Shmem (smaps_rollup); segment = the memfd mappings in the server per connection. $CONNS_ROUNDS round(s)."
    awk -v mode=conns -v rows="$CONNS_ROWSPEC" -v base="$BASE" \
        -f "$ROOT/bench/report.awk" "$REC"
    if [ -s "$TARGETS" ]; then
        echo
        echo "### Targets"
        echo
        echo "| target | row | measured | |"
        echo "|---|---|---|---|"
        cat "$TARGETS"
    fi
    awk -v mode=micro -v rows="$MROWSPEC" -v base="$BASE" \
        -v paper="$ROOT/bench/paper-table5.tsv" -f "$ROOT/bench/report.awk" "$REC"
    echo
    echo "## Notes"
    echo
    sed 's/^/- /' "$NOTES"
    echo "- Latency: sockperf reports half the round trip (its default), qperf tcp_lat too; redis and wrk report full request latency."
    echo "- CPU: user+sys seconds of the client (getrusage via /usr/bin/time) plus the server (/proc/<pid>/stat of the server and its live children, 10 ms ticks) during the run, per GB moved or per million transactions."
    echo "- TCP segments: system-wide TcpOutSegs (/proc/net/snmp) delta during the run, so near zero means the bytes did not cross the TCP stack."
    if [ -n "$CUBIC_ROW" ]; then
        echo "- TCP (cubic) runs only iperf3 (-C cubic, applied by iperf3 at both ends) and iperf 2 (-Z cubic on client and server) and the micro TCP pair (setsockopt TCP_CONGESTION); sockperf, qperf, redis, nginx and wrk have no congestion-control option, and a benchmark does not change the system default."
    fi
    if [ -s "$WARNS" ]; then
        echo
        echo "## fastloop warnings"
        echo
        sort "$WARNS" | uniq | sed 's/^/- /'
    fi
    if [ -s "$FAILS" ]; then
        echo
        echo "## Failures"
        echo
        sed 's/^/- /' "$FAILS"
    fi
} >"$MD"

# Plots (PNG, gnuplot): bandwidth vs size and latency percentiles.
awk -v mode=bwdat -v rows="$MROWSPEC" -f "$ROOT/bench/report.awk" "$REC" >"$TMP/bw.dat"
grep -v '^#' "$ROOT/bench/paper-table5.tsv" >"$TMP/paper.dat"
for pc in p50 p99 p99.9; do
    awk -v mode=latdat -v pct="${pc}_us" -v rows="$ROWSPEC" -f "$ROOT/bench/report.awk" "$REC" >"$TMP/lat-$pc.dat"
done
if gnuplot -e "bw='$TMP/bw.dat'; paper='$TMP/paper.dat'; lat='$TMP/lat'; out='$OUT/$BASENAME'; title='$HOST $DATE'" \
    "$ROOT/bench/plot.gp" >"$TMP/gnuplot.log" 2>&1; then
    {
        echo
        echo "## Plots"
        echo
        echo "![bandwidth vs size]($BASENAME-bw.png)"
        [ -f "$OUT/$BASENAME-lat.png" ] && echo "![latency percentiles]($BASENAME-lat.png)"
    } >>"$MD"
else
    fail "gnuplot: $(tail -n 2 "$TMP/gnuplot.log" | tr '\n' ' ')"
fi

# ---------------------------------------------------------------- summary
echo
echo "== summary ($MODE, $(( $(date +%s) - T_START )) s): $MD"
awk -v mode=summary -v rows="$MROWSPEC" -v base="$BASE" -f "$ROOT/bench/report.awk" "$REC"
[ -s "$NOTES" ] && sed 's/^/  note: /' "$NOTES"
[ -s "$WARNS" ] && sort "$WARNS" | uniq | sed 's/^/  WARNING: /'
if [ -s "$FAILS" ]; then
    echo "  $(wc -l <"$FAILS") failure(s):"
    sed 's/^/  FAIL: /' "$FAILS"
    exit 1
fi
echo "  all tool runs and checksums ok"
exit 0
