#!/usr/bin/env bash
# The registry directory's checks, as a user meets them:
#   - a registry that is group/world accessible, a symlink, or owned by
#     someone else disables the fast path with exactly one warning per
#     process, and connections work as plain TCP;
#   - another user can neither list nor read the registry, and a client of
#     another user gets plain TCP (reason no-listener: its own registry).
# Exit 0 pass, 1 fail, 77 skip (the other-user part needs root).
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${BUILD:-build}
case $build in /*) ;; *) build=$top/$build ;; esac
bin=$build/selftest/integ/matrix
lib=$build/libfastloop.so
if [ -n "${SAN_RT:-}" ]; then
    echo "SKIP registry checks under a sanitizer build (they run python3 preloaded)"
    exit 77
fi
work=$(mktemp -d /tmp/flp-registry.XXXXXX)
chmod 711 "$work"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$work"; }
trap cleanup EXIT
fail=0
say() { printf '%s\n' "$*"; }
bad() { say "FAIL: $*"; fail=1; }

# run the "poll" case (both ends preloaded) against a registry directory
# and expect plain TCP plus one "fast path disabled" warning per process
expect_disabled() {
    local what=$1 dir=$2 log=$work/log-$1
    if FLP_SETUP=both FLP_EXPECT=tcp FLP_LIB=$lib FASTLOOP_TRANSPORT=uds \
        FASTLOOP_DIR=$dir FASTLOOP_LOG=info FASTLOOP_LOG_FILE=$log \
        timeout 60 "$bin" poll >"$work/out" 2>&1; then
        n=$(grep -c "fast path disabled" "$log" 2>/dev/null || true)
        procs=$(grep -o '^fastloop\[[0-9]*\]' "$log" 2>/dev/null | sort -u | wc -l)
        nd=$(grep -c "transport=tcp reason=disabled$" "$log" 2>/dev/null || true)
        if [ "$n" -ge 2 ] && [ "$n" = "$procs" ] && [ "$nd" = 2 ]; then
            say "PASS $what: plain TCP (reason=disabled on both ends), one warning per process ($n)"
        else
            bad "$what: expected one 'fast path disabled' warning per process and 2 reason=disabled lines, got $n for $procs processes, $nd lines"
            cat "$log" 2>/dev/null | head -5
        fi
    else
        bad "$what: the poll case failed"; tail -5 "$work/out"
    fi
}

mkdir -m 755 "$work/open"
expect_disabled "mode-0755" "$work/open"
mkdir -m 700 "$work/real"; ln -s "$work/real" "$work/link"
expect_disabled "symlink" "$work/link"

if [ "$(id -u)" -ne 0 ] || ! command -v setpriv >/dev/null; then
    say "SKIP other-user checks: need root and setpriv"
    [ $fail = 0 ] && exit 77 || exit 1
fi
mkdir -m 700 "$work/foreign"; chown 65534:65534 "$work/foreign"
expect_disabled "foreign-owner" "$work/foreign"

# root's registry with a live listener; nobody tries to look in and connect
reg=$work/rootreg
mkdir -m 700 "$reg"
py=/usr/bin/python3
LD_PRELOAD=$lib FASTLOOP_DIR=$reg FASTLOOP_LOG=info FASTLOOP_LOG_FILE=$work/srv.log \
    $py -c '
import socket, sys
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen()
print(l.getsockname()[1], flush=True)
c, _ = l.accept(); d = c.recv(100); c.sendall(d[::-1]); c.close()
' > "$work/port" &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")
[ -n "$port" ] || { bad "root server did not start"; exit 1; }
file=$(ls "$reg" | head -1)
[ -n "$file" ] || bad "no handshake file for root's listener"
if setpriv --reuid=65534 --regid=65534 --clear-groups ls "$reg" >/dev/null 2>&1; then
    bad "nobody can list root's registry"
else
    say "PASS nobody cannot list the registry"
fi
if setpriv --reuid=65534 --regid=65534 --clear-groups cat "$reg/$file" >/dev/null 2>&1; then
    bad "nobody can read root's handshake file"
else
    say "PASS nobody cannot read a handshake file"
fi
stat -c '%a %U' "$reg/$file" | grep -q '^600 root$' || bad "handshake file mode/owner: $(stat -c '%a %U' "$reg/$file")"
# nobody's own registry, as the default would make it (removed afterwards)
nreg=/tmp/flp-registry-nobody.$$
pids+=()
trap 'cleanup; rm -rf "$nreg"' EXIT
# nobody must be able to open the library: the checkout may not be readable
# by other users (a clone under /root, mode 0700), so nobody preloads a copy
# in our own temp dir (0711: traversable, not listable), removed by cleanup.
nlib=$work/libfastloop-nobody.so
cp "$lib" "$nlib" && chmod 0755 "$nlib"
if ! setpriv --reuid=65534 --regid=65534 --clear-groups test -r "$nlib"; then
    bad "nobody cannot read the library copy $nlib (is a directory above $work not traversable?)"
    exit 1
fi
out=$(cd "$work" && timeout 20 setpriv --reuid=65534 --regid=65534 --clear-groups \
    env LD_PRELOAD=$nlib FASTLOOP_DIR=$nreg FASTLOOP_LOG=info \
    $py -c "
import socket
c = socket.create_connection(('127.0.0.1', $port)); c.sendall(b'hello'); print(c.recv(100).decode())
" 2>&1)
if echo "$out" | grep -q '^olleh$' && echo "$out" | grep -q 'transport=tcp reason=no-listener'; then
    say "PASS nobody's client to root's server: plain TCP (no-listener), data right"
else
    bad "nobody's client: $out"
fi
wait "${pids[@]}" 2>/dev/null
# no claim for it: the server says so when it looks (at once with the
# switch in accept; after FASTLOOP_SWITCH_AFTER calls by default, so this
# one-exchange connection ends first: short-lived)
grep -qE 'transport=tcp reason=(peer-not-preloaded|short-lived)$' "$work/srv.log" || bad "server log: $(cat "$work/srv.log")"
[ $fail = 0 ] && say "registry: all passed"
exit $fail
