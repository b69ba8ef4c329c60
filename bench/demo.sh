#!/usr/bin/env bash
# bench/demo.sh — `make demo`: see fastloop work in under two minutes.
#
# Runs iperf3 (-l 128K) and sockperf ping-pong (64 B) four ways:
#   plain      neither end preloaded: loopback TCP
#   shm        both ends run under bin/fastloop (the default transport:
#              shared-memory rings): the log must say transport=shm and
#              TcpOutSegs barely moves
#   uds        the same with --transport uds (the Unix socket carries the
#              bytes): transport=uds
#   mixed      server preloaded, client plain: must stay TCP, and the log
#              must say transport=tcp (with its reason)
# then prints a compact A/B table with ratios against plain TCP.
# Exit status 0 when every run worked and each way took the expected path.
set -u -o pipefail

DUR=${DEMO_SECONDS:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2

if [ -z "${FASTLOOP_BENCH_IN_NETNS:-}" ]; then
    "$ROOT/scripts/need" iperf3 sockperf ss:iproute2 ip:iproute2 timeout:coreutils \
        pgrep:procps unshare:util-linux || exit 1
    echo "== building (make)"
    make -s >/dev/null || { echo "demo: make failed" >&2; exit 1; }
fi
[ -f build/libfastloop.so ] || { echo "demo: build/libfastloop.so was not built" >&2; exit 1; }

PIN_SERVER=""
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
maybe_enter_netns "$ROOT/bench/demo.sh" "$@"
echo "== network: $NETNS_NOTE"
TMP=$(mktemp -d /tmp/fastloop-demo.XXXXXX) || exit 2
trap 'stop_all_servers; rm -rf "$TMP"' EXIT
trap 'echo "demo: interrupted" >&2; exit 130' INT TERM

FL=("$ROOT/bin/fastloop" run --log info)
BAD=0
declare -A R=()   # way,metric -> value

# prefix WAY SIDE LOG: fill PFX with the command prefix of that end.
prefix() {
    PFX=()
    case $1/$2 in
        shm/*|mixed/server) PFX=("${FL[@]}" --transport shm --log-file "$3" --) ;;
        uds/*) PFX=("${FL[@]}" --transport uds --log-file "$3" --) ;;
    esac
}

run_way() {
    local way=$1 slog=$TMP/$1-server.log clog=$TMP/$1-client.log
    local p3 pp g0 g1 out
    : >"$slog"; : >"$clog"
    free_port && p3=$FREE_PORT && free_port && pp=$FREE_PORT || exit 2
    prefix "$way" server "$slog"
    start_server iperf3 plain "$p3" "${PFX[@]}" iperf3 -s -B 127.0.0.1 -p "$p3" || { BAD=1; return; }
    start_server sockperf plain "$pp" "${PFX[@]}" sockperf server -i 127.0.0.1 -p "$pp" --tcp || { BAD=1; return; }
    prefix "$way" client "$clog"

    echo "-- $way: iperf3 -c 127.0.0.1 -l 128K -t $DUR"
    g0=$(tcp_outsegs)
    out=$(timeout -k 3 $((DUR + 20)) "${PFX[@]}" iperf3 -c 127.0.0.1 -p "$p3" -l 128K -t "$DUR" -f m 2>&1)
    local rc=$?
    g1=$(tcp_outsegs)
    R[$way,i3]=$(awk '/receiver$/ { for (i = 1; i < NF; i++) if ($(i + 1) == "Mbits/sec") v = $i } END { print v }' <<<"$out")
    R[$way,i3segs]=$((g1 - g0))
    if [ $rc -ne 0 ] || [ -z "${R[$way,i3]}" ]; then
        echo "   iperf3 failed (exit $rc): $(tail -n 2 <<<"$out" | tr '\n' ' ')"
        BAD=1
    else
        echo "   ${R[$way,i3]} Mbit/s, TcpOutSegs +$((g1 - g0))"
    fi

    echo "-- $way: sockperf ping-pong -m 64 -t $DUR"
    g0=$(tcp_outsegs)
    out=$(timeout -k 3 $((DUR + 20)) "${PFX[@]}" sockperf ping-pong -i 127.0.0.1 -p "$pp" --tcp -m 64 -t "$DUR" 2>&1)
    rc=$?
    g1=$(tcp_outsegs)
    R[$way,avg]=$(sed -n 's/.*Summary: Latency is \([0-9.]*\) usec.*/\1/p' <<<"$out")
    R[$way,p50]=$(awk '/percentile 50.000 =/ { print $NF; exit }' <<<"$out")
    R[$way,p99]=$(awk '/percentile 99.000 =/ { print $NF; exit }' <<<"$out")
    R[$way,ppsegs]=$((g1 - g0))
    if [ $rc -ne 0 ] || [ -z "${R[$way,avg]}" ] || grep -q ERROR <<<"$out"; then
        echo "   sockperf failed (exit $rc): $(grep -m1 ERROR <<<"$out")"
        BAD=1
    else
        echo "   avg ${R[$way,avg]} µs, p50 ${R[$way,p50]} µs, p99 ${R[$way,p99]} µs (half round trip), TcpOutSegs +$((g1 - g0))"
    fi
    stop_all_servers

    local fast other tcp
    tcp=$(cat "$slog" "$clog" | grep -c 'transport=tcp')
    case $way in
        shm|uds)
            fast=$(cat "$slog" "$clog" | grep -c "transport=$way")
            other=$(cat "$slog" "$clog" | grep -cE 'transport=(uds|shm)' | awk -v f="$fast" '{ print $1 - f }')
            echo "   log: $fast connection line(s) with transport=$way, $other on another fast transport, $tcp with transport=tcp"
            grep -h -m 2 'transport=' "$slog" "$clog" | sed 's/^/     /'
            if [ "$fast" -eq 0 ] || [ "$tcp" -gt 0 ] || [ "$other" -gt 0 ]; then
                echo "   EXPECTED every connection on transport=$way"
                BAD=1
            fi ;;
        mixed)
            fast=$(cat "$slog" "$clog" | grep -cE 'transport=(uds|shm)')
            echo "   log (server side): $tcp connection line(s) with transport=tcp, $fast on a fast transport"
            grep -h -m 2 'transport=' "$slog" | sed 's/^/     /'
            if [ "$tcp" -eq 0 ] || [ "$fast" -gt 0 ]; then
                echo "   EXPECTED the mixed pair to stay TCP and say transport=tcp"
                BAD=1
            fi ;;
    esac
}

for way in plain shm uds mixed; do
    run_way "$way"
done

ratio() {   # A B -> A/B with two decimals, or "-"
    awk -v a="${1:-}" -v b="${2:-}" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2fx", a / b }'
}
echo
echo "== A/B ($DUR s per run; loopback; one run each, so expect noise)"
printf '%-10s %12s %8s %10s %10s %8s %10s %8s %10s\n' \
    way "iperf3 Mb/s" ratio "TCP segs" "pp avg µs" ratio "pp p99 µs" ratio "TCP segs"
for way in plain shm uds mixed; do
    printf '%-10s %12s %8s %10s %10s %8s %10s %8s %10s\n' "$way" \
        "${R[$way,i3]:--}" "$(ratio "${R[$way,i3]:-}" "${R[plain,i3]:-}")" "${R[$way,i3segs]:--}" \
        "${R[$way,avg]:--}" "$(ratio "${R[$way,avg]:-}" "${R[plain,avg]:-}")" \
        "${R[$way,p99]:--}" "$(ratio "${R[$way,p99]:-}" "${R[plain,p99]:-}")" "${R[$way,ppsegs]:--}"
done
echo "(ratios against plain: above 1 is faster for iperf3, below 1 is faster for latency;"
echo " TCP segs = TcpOutSegs during the run ($NETNS_NOTE); near zero when the bytes bypass TCP)"
if [ $BAD -ne 0 ]; then
    echo "demo: FAILED (see above)"
    exit 1
fi
echo "demo: ok"
