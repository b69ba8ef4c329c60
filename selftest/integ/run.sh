#!/usr/bin/env bash
# Run the integration matrix: every case under each setup.
#   both/shm      both ends preloaded, FASTLOOP_TRANSPORT=shm: must be on rings
#   both/uds      both ends preloaded, FASTLOOP_TRANSPORT=uds: must be fast
#   both/off      both preloaded, FASTLOOP_TRANSPORT=off: pure pass-through
#   plain-server  client preloaded, server not: must stay TCP
#   plain-client  server preloaded, client not: must stay TCP
# These switch in accept() (FASTLOOP_SWITCH_AFTER=0): each case tests the
# switch itself, from its first byte.  The default, the switch after N
# data calls (FASTLOOP_SWITCH_AFTER, 8 unless set), runs in
#   both/shm/lazy  every case: bytes, errno and time as everywhere, but
#                  a connection may end on either path (FLP_EXPECT=any),
#                  except the LAZY_CASES, written to switch late (shm)
#   both/uds/lazy  the LAZY_CASES, on the UDS
# Usage: run.sh [CASE...]   (env BUILD, default build)
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${BUILD:-build}
case $build in /*) ;; *) build=$top/$build ;; esac
bin=$build/selftest/integ/matrix
export FLP_LIB=$build/libfastloop.so
[ -x "$bin" ] && [ -r "$FLP_LIB" ] || { echo "integ: build first (make)"; exit 1; }
# A sanitizer build: its runtime must come first in LD_PRELOAD
if [ -n "${SAN_RT:-}" ]; then
    export FLP_LIB=$SAN_RT:$FLP_LIB FLP_SANITIZER=1
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1}
fi
cases=("$@")
if [ ${#cases[@]} -eq 0 ]; then
    cases=($("$bin" 2>&1 | sed -n 's/.*cases://p'))
fi
# cases written for a switch in mid-conversation, and those whose
# connections make enough calls to switch late
LAZY_CASES="late-switch late-switch-epoll late-switch-et late-switch-poll late-switch-threads late-switch-poll-threads late-switch-bigsend short-conns"
ONE_CPU_CASES="echo bothwrite poll epoll-et nbconnect server-first prefork many threads write-close unsent epoll-et-edge epoll-preconnect kill9 shared-writers"
pass=0 fail=0 skip=0
work=$(mktemp -d /tmp/flp-integ.XXXXXX)
trap 'rm -rf "$work"' EXIT
for c in "${cases[@]}"; do
    setups=${FLP_SETUPS:-"both/shm both/uds both/off plain-server plain-client"}
    # spinning code must work when both sides share one core
    case " $ONE_CPU_CASES " in *" $c "*) setups="$setups both/shm/1cpu both/uds/1cpu" ;; esac
    if [ -z "${FLP_SETUPS:-}" ]; then
        setups="$setups both/shm/lazy"
        case " $LAZY_CASES " in *" $c "*) setups="$setups both/uds/lazy" ;; esac
    fi
    for setup in $setups; do
        dir=$work/reg-$c-${setup//\//-}
        mkdir -m 700 "$dir"
        log=$work/log-$c-${setup//\//-}
        tr=uds; expect=tcp
        pin=
        lazy=
        sw=0
        case $setup in
            */lazy) lazy=1; sw=${FASTLOOP_SWITCH_AFTER:-8} ;;
        esac
        lazy_any=
        [ -n "$lazy" ] && case " $LAZY_CASES " in *" $c "*) ;; *) lazy_any=1 ;; esac
        case ${setup%/lazy} in
            both/uds) s=both; expect=uds ;;
            both/uds/1cpu) s=both; expect=uds; pin="taskset -c 0" ;;
            both/shm) s=both; expect=shm; tr=shm ;;
            both/shm/1cpu) s=both; expect=shm; tr=shm; pin="taskset -c 0" ;;
            both/off) s=both; tr=off ;;
            *) s=$setup ;;
        esac
        [ -n "$lazy_any" ] && expect=any
        many=100000
        case $setup in both/uds|both/shm) ;; *) many=3000 ;; esac
        [ -n "$pin" ] && ! command -v taskset >/dev/null && continue
        case "$c/$setup" in stream1g/both/uds|stream1g/both/shm|stream1g/both/off) ;; stream1g/*) continue ;; esac
        if [ -n "$lazy" ]; then export FLP_LAZY=1; else unset FLP_LAZY; fi
        t0=$(date +%s.%N)
        # decide_wait_us: a server's first read waits this long for a
        # client preempted between its connect() and filling its claim,
        # then stays TCP (correct, but the cases assert the fast path);
        # a loaded CI machine preempts for longer than the 10 ms default
        FLP_SETUP=$s FLP_EXPECT=$expect FASTLOOP_TRANSPORT=$tr FASTLOOP_DIR=$dir \
            FASTLOOP_SWITCH_AFTER=$sw \
            FASTLOOP_LOG=info FASTLOOP_LOG_FILE=$log FLP_MANY=$many \
            FASTLOOP_DECIDE_WAIT_US=${FASTLOOP_DECIDE_WAIT_US:-500000} \
            timeout -k 5 300 $pin "$bin" "$c" >"$work/out" 2>&1
        rc=$?
        t=$(echo "$(date +%s.%N) - $t0" | bc)
        case $rc in
            0) pass=$((pass + 1)); printf 'PASS %-20s %-14s %6.2fs\n' "$c" "$setup" "$t" ;;
            77) skip=$((skip + 1)); printf 'SKIP %-20s %-14s %s\n' "$c" "$setup" "$(tail -1 "$work/out")" ;;
            *) fail=$((fail + 1)); printf 'FAIL %-20s %-14s %6.2fs (rc %d)\n' "$c" "$setup" "$t" "$rc"
               sed 's/^/    | /' "$work/out" | tail -20
               [ -f "$log" ] && grep -v 'transport=uds$' "$log" | tail -5 | sed 's/^/    log| /' ;;
        esac
        # on rings, no fast connection may have fallen back to the UDS
        if [ "$expect" = shm ] && [ $rc -eq 0 ] && grep -q 'transport=uds' "$log" 2>/dev/null; then
            echo "FAIL $c $setup: a connection used uds, not shm: $(grep -m1 'transport=uds' "$log")"
            fail=$((fail + 1))
        fi
        # nothing may be left in the registry once all processes are gone:
        # handshake files go with their listeners; the stat files of
        # processes that _exit()ed or were killed are swept by the reader
        "$top/bin/fastloop" stat --dir "$dir" >/dev/null 2>&1
        if [ "$(ls -A "$dir" | wc -l)" -ne 0 ] && [ $rc -eq 0 ]; then
            echo "FAIL $c $setup: registry not empty: $(ls "$dir")"; fail=$((fail + 1))
        fi
    done
done
echo "integ: $pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
