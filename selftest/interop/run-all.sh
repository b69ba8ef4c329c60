#!/usr/bin/env bash
# selftest/interop/run-all.sh — run every interop script, one line each:
#   PASS|FAIL|SKIP  NAME  SECONDS s
# then exactly "N passed, N failed, N skipped". Exit 1 if any failed.
# A failing or skipped script's output is printed below its line; every
# script's output is kept in $INTEROP_OUT (default: a temp dir, removed when
# all passed). Each script is bounded by timeout(1) (INTEROP_TIMEOUT, 120 s).
# Arguments, if any, name the scripts to run (e.g. "iperf3 redis").
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
LIMIT=${INTEROP_TIMEOUT:-120}
OUT=${INTEROP_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/fastloop-interop-out.XXXXXX")}
mkdir -p "$OUT"

if [ $# -gt 0 ]; then
    scripts=()
    for n in "$@"; do scripts+=("$HERE/${n%.sh}.sh"); done
else
    scripts=()
    for f in "$HERE"/*.sh; do
        case ${f##*/} in lib.sh|run-all.sh) continue ;; esac
        scripts+=("$f")
    done
fi

pass=0 fail=0 skip=0 t0=$SECONDS
for f in "${scripts[@]}"; do
    name=$(basename "$f" .sh)
    start=$SECONDS
    if [ ! -f "$f" ]; then
        rc=127; echo "no such script: $f" > "$OUT/$name.out"
    else
        timeout -k 10 "$LIMIT" bash "$f" > "$OUT/$name.out" 2>&1 < /dev/null
        rc=$?
    fi
    secs=$((SECONDS - start))
    case $rc in
    0)  pass=$((pass + 1)); printf 'PASS  %-12s %3ds\n' "$name" "$secs" ;;
    77) skip=$((skip + 1)); printf 'SKIP  %-12s %3ds  %s\n' "$name" "$secs" \
            "$(grep -m1 -o 'SKIP .*' "$OUT/$name.out" | cut -c6-)" ;;
    *)  fail=$((fail + 1))
        [ $rc = 124 ] && echo "run-all: killed after ${LIMIT}s" >> "$OUT/$name.out"
        printf 'FAIL  %-12s %3ds  (exit %d)\n' "$name" "$secs" "$rc"
        sed 's/^/    | /' "$OUT/$name.out" | tail -n 60 ;;
    esac
done

echo "interop: ${#scripts[@]} scripts in $((SECONDS - t0))s; outputs in $OUT"
if [ $fail -eq 0 ] && [ -z "${INTEROP_OUT:-}" ]; then
    rm -rf "$OUT"
fi
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
