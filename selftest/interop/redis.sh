#!/usr/bin/env bash
# selftest/interop/redis.sh — unmodified redis-server with redis-benchmark
# and redis-cli in the three setups.
# Data check: redis-benchmark (bounded -n, quiet CSV output) completes every
# test with a positive rate, plain and pipelined (-P 16); a random 1 MiB
# binary value written with redis-cli -x SET reads back with GET with the
# same sha256 and STRLEN.
. "$(dirname "$0")/lib.sh"
fl_init redis
fl_need redis-server redis-benchmark:redis-tools redis-cli:redis-tools

REQS=${REDIS_REQUESTS:-20000}
VALUE=$FL_TMP/value.bin
head -c 1048576 /dev/urandom > "$VALUE"

# bench TAG OPTS... — one redis-benchmark run, every test with rps > 0.
bench() {
    local tag=$1 out res; shift
    out=$FL_TMP/$FL_PHASE.bench-$tag.csv
    if ! fl_run "$CLI" 40 redis-benchmark -h 127.0.0.1 -p "$PORT" -n "$REQS" -c 8 -t ping,set,get,lpush,lpop --csv "$@" > "$out" 2>&1; then
        fl_fail "redis-benchmark $tag exited non-zero"; tail -n 8 "$out"; return
    fi
    # "test","rps",...: five tests (ping has two forms), every rps > 0
    if res=$(awk -F'"' 'NR > 1 && $2 != "" { n++; printf "%s=%s ", $2, $4; if ($4 + 0 <= 0) bad = 1 }
                        END { exit (bad || n < 6) }' "$out"); then
        fl_say "[$FL_PHASE] benchmark $tag: $res"
    else
        fl_fail "redis-benchmark $tag: not every test ran with a positive rate: $res"; cat "$out"
    fi
}

scenario() {
    local spid got want len
    fl_newport PORT
    mkdir -p "$FL_TMP/data-$FL_PHASE"
    fl_bg redis-server "$SRV" redis-server --port "$PORT" --bind 127.0.0.1 \
        --save '' --appendonly no --daemonize no --protected-mode no \
        --dir "$FL_TMP/data-$FL_PHASE" --logfile ''
    spid=$FL_LAST_PID
    fl_wait_listen "$PORT" "$spid" || return
    bench plain
    bench pipelined -P 16
    if [ "$(fl_run "$CLI" 20 redis-cli -h 127.0.0.1 -p "$PORT" -x SET fl:value < "$VALUE")" != OK ]; then
        fl_fail "redis-cli -x SET of 1 MiB did not answer OK"
    fi
    want=$(fl_sha "$VALUE")
    # --raw prints the value and one newline
    got=$(fl_run "$CLI" 20 redis-cli -h 127.0.0.1 -p "$PORT" --raw GET fl:value | head -c -1 | sha256sum | cut -d' ' -f1)
    len=$(fl_run "$CLI" 20 redis-cli -h 127.0.0.1 -p "$PORT" STRLEN fl:value)
    if [ "$got" = "$want" ] && [ "$len" = 1048576 ]; then
        fl_say "[$FL_PHASE] 1 MiB value round trip: sha256 ${want:0:16}... STRLEN $len"
    else
        fl_fail "1 MiB value round trip: sha256 sent $want got $got, STRLEN $len"
    fi
    kill -0 "$spid" 2>/dev/null || { fl_fail "redis-server died"; fl_show_outputs; }
}

fl_matrix scenario
fl_finish
