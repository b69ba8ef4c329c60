#!/bin/sh
# The library exports only the hooked libc names: every dynamic symbol it
# defines must appear in preload/fastloop.map, and none may carry our
# internal prefixes.
lib=${1:?usage: check-exports.sh LIB}
map=$(dirname "$0")/../preload/fastloop.map
bad=0
for sym in $(nm -D --defined-only "$lib" | awk '{print $3}' | sed 's/@.*//'); do
    if ! grep -Eq "(^|[[:space:]])$sym;" "$map"; then
        echo "check-exports: unexpected exported symbol: $sym"; bad=1
    fi
done
n=$(nm -D --defined-only "$lib" | wc -l)
[ "$n" -ge 40 ] || { echo "check-exports: only $n exported symbols; hooks missing?"; bad=1; }
[ $bad -eq 0 ] && echo "check-exports: $n exported symbols, all hooked libc names"
exit $bad
