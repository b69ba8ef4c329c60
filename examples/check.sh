#!/usr/bin/env bash
# examples/check.sh — `make check-examples` (part of `make check`): the
# examples do what examples/README.md says they do.
#
#   echo, both preloaded   echo-client and echo-server with the library:
#                          the checksum matches, and the log has exactly one
#                          client and one server line for the connection,
#                          both transport=shm (the default), naming the same client port
#   echo, server only      the client without the library: the checksum
#                          still matches, the server logs transport=tcp
#                          reason=peer-not-preloaded, the client nothing
#   fastloop.conf          names every key the library knows (shim/cfg.c);
#                          the library reads it, and a copy with the
#                          commented-out lines switched on, without a word
#                          on stderr; it leaves the defaults as they are;
#                          a bad key in a copy is reported (the stderr
#                          check can fail)
#   systemd drop-in        systemd-analyze verify reads it, and a copy with
#                          the commented-out settings switched on, without a warning
#                          (and does warn about a bad copy); skipped when
#                          systemd-analyze is missing
#   nginx recipe           nginx -t accepts the config (a copy whose pid and
#                          log paths point into a temp dir), and rejects a
#                          bad copy; skipped when nginx is missing
#
# Environment: LIB (default build/libfastloop.so), EXAMPLES_DIR (where
# echo-server and echo-client are built, default build/examples).
# Prints a PASS/FAIL/SKIP line per check and last "examples: N passed, N
# failed"; exits 1 when anything failed.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
LIB=${LIB:-$REPO/build/libfastloop.so}
BIN=${EXAMPLES_DIR:-$REPO/build/examples}
BYTES=4194304
NPASS=0
NFAIL=0
SRV_PID=
TMP=

pass() { NPASS=$((NPASS + 1)); echo "PASS $*"; }
fail() { NFAIL=$((NFAIL + 1)); echo "FAIL $*"; }
skip() { echo "SKIP $*"; }

# show FILE — a file's last lines, indented, after a FAIL line.
show() {
    [ -s "$1" ] || { echo "    (${1##*/} is empty)"; return; }
    echo "    --- ${1##*/}:"
    tail -n 12 "$1" | sed 's/^/    /'
}

# stop_server — TERM the server (timeout(1) passes it on), reap it.
stop_server() {
    [ -n "$SRV_PID" ] || return 0
    kill -TERM "$SRV_PID" 2>/dev/null
    wait "$SRV_PID" 2>/dev/null
    SRV_PID=
}

cleanup() {
    stop_server
    [ -n "$TMP" ] && rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

finish() {
    echo "examples: $NPASS passed, $NFAIL failed"
    [ "$NFAIL" = 0 ] && exit 0
    exit 1
}

# with MODE — the env(1) command line for MODE in the array ENVCMD:
#   preloaded  the library, log at info level into the phase's log, the
#              phase's fresh private registry
#   plain      none of that
with() {
    case $1 in
    preloaded)
        ENVCMD=(env -u FASTLOOP_CONFIG -u FASTLOOP_TRANSPORT LD_PRELOAD="$LIB"
                FASTLOOP_LOG=info FASTLOOP_LOG_FILE="$TMP/$PHASE.log"
                FASTLOOP_DIR="$TMP/$PHASE.reg") ;;
    plain)
        ENVCMD=(env -u LD_PRELOAD -u FASTLOOP_CONFIG -u FASTLOOP_TRANSPORT
                -u FASTLOOP_LOG -u FASTLOOP_LOG_FILE -u FASTLOOP_DIR) ;;
    esac
}

# start_server MODE — echo-server on a port the kernel picks, under MODE,
# at most 60 s.  Sets SRV_PID and PORT; returns 1 (and reports) if it does
# not say it listens within 10 s.
start_server() {
    local out=$TMP/$PHASE.server.out
    with "$1"
    timeout -k 5 60 "${ENVCMD[@]}" "$BIN/echo-server" 0 > "$out" 2>&1 &
    SRV_PID=$!
    PORT=
    for _ in $(seq 200); do
        PORT=$(sed -n 's/^echo-server: listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$out")
        [ -n "$PORT" ] && return 0
        kill -0 "$SRV_PID" 2>/dev/null || break
        sleep 0.05
    done
    fail "$LABEL: echo-server did not start listening"
    show "$out"
    stop_server
    return 1
}

# run_client MODE — echo-client under MODE, at most 30 s; PASS when it
# exits 0 with its "ok" line (the checksum of what came back matched).
run_client() {
    local out=$TMP/$PHASE.client.out rc
    with "$1"
    timeout -k 5 30 "${ENVCMD[@]}" "$BIN/echo-client" "$PORT" "$BYTES" > "$out" 2>&1
    rc=$?
    if [ $rc = 0 ] && grep -qE "^echo-client: $BYTES bytes .* ok " "$out"; then
        pass "$LABEL: $(cat "$out")"
        return 0
    fi
    fail "$LABEL: echo-client exited $rc$([ $rc = 124 ] && echo ' (timed out)')"
    show "$out"
    return 1
}

# served_port — the client port echo-server reported for its one
# connection, after checking it echoed every byte.
served_port() {
    sed -n "s/^echo-server: 127\.0\.0\.1:\([0-9][0-9]*\): echoed $BYTES bytes$/\1/p" \
        "$TMP/$PHASE.server.out"
}

# phase ID LABEL — a fresh log and registry (0700, as the library
# requires), files named after ID, reports after LABEL.
phase() {
    PHASE=$1 LABEL=$2
    : > "$TMP/$PHASE.log"
    mkdir -m 700 "$TMP/$PHASE.reg"
}

check_echo_both() {
    local log cl sl cport sport served
    phase both "echo, both preloaded"
    log=$TMP/$PHASE.log
    start_server preloaded || return
    run_client preloaded
    stop_server             # every line is in the log now
    cl=$(grep -E " conn client [^ ]+->127\.0\.0\.1:$PORT " "$log")
    sl=$(grep -E " conn server 127\.0\.0\.1:$PORT<-" "$log")
    cport=$(printf '%s\n' "$cl" | sed -nE "s/^fastloop\[[0-9]+\] conn client 127\.0\.0\.1:([0-9]+)->127\.0\.0\.1:$PORT transport=shm$/\1/p")
    sport=$(printf '%s\n' "$sl" | sed -nE "s/^fastloop\[[0-9]+\] conn server 127\.0\.0\.1:$PORT<-127\.0\.0\.1:([0-9]+) transport=shm$/\1/p")
    served=$(served_port)
    if [ "$(printf '%s\n' "$cl" | grep -c .)" = 1 ] && [ "$(printf '%s\n' "$sl" | grep -c .)" = 1 ] &&
       [ -n "$cport" ] && [ "$cport" = "$sport" ] && [ "$cport" = "$served" ]; then
        pass "$LABEL: log: client and server transport=shm for 127.0.0.1:$cport->127.0.0.1:$PORT"
    else
        fail "$LABEL: expected one client and one server line with transport=shm for the client port echo-server saw (${served:-none})"
        show "$log"
        show "$TMP/$PHASE.server.out"
    fi
}

check_echo_server_only() {
    local log sl sport served
    phase server-only "echo, server only"
    log=$TMP/$PHASE.log
    start_server preloaded || return
    run_client plain
    stop_server
    sl=$(grep -E " conn server 127\.0\.0\.1:$PORT<-" "$log")
    sport=$(printf '%s\n' "$sl" | sed -nE "s/^fastloop\[[0-9]+\] conn server 127\.0\.0\.1:$PORT<-127\.0\.0\.1:([0-9]+) transport=tcp reason=peer-not-preloaded$/\1/p")
    served=$(served_port)
    if [ "$(printf '%s\n' "$sl" | grep -c .)" = 1 ] && [ -n "$sport" ] && [ "$sport" = "$served" ] &&
       ! grep -q ' conn client ' "$log"; then
        pass "$LABEL: log: server transport=tcp reason=peer-not-preloaded for 127.0.0.1:$sport, no client line"
    else
        fail "$LABEL: expected one server line transport=tcp reason=peer-not-preloaded for the client port echo-server saw (${served:-none}) and no client line"
        show "$log"
        show "$TMP/$PHASE.server.out"
    fi
}

# lib_stderr CONF [VAR=VALUE...] — what the library says on stderr when
# /bin/true starts with FASTLOOP_CONFIG=CONF, at warn level unless a
# VAR=VALUE says otherwise.  A private registry, so nothing outside TMP is
# created.
lib_stderr() {
    local conf=$1; shift
    # stderr into the pipe, stdout away: the order of the two is deliberate
    # shellcheck disable=SC2069
    timeout 10 env -u FASTLOOP_LOG_FILE -u FASTLOOP_TRANSPORT FASTLOOP_LOG=warn \
        FASTLOOP_DIR="$TMP/conf.reg" FASTLOOP_CONFIG="$conf" "$@" LD_PRELOAD="$LIB" \
        /bin/true 2>&1 >/dev/null
}

check_conf() {
    local conf=$HERE/fastloop.conf keys key missing='' out
    mkdir -m 700 "$TMP/conf.reg"
    keys=$(grep -oE '\{ "FASTLOOP_[A-Z_]+", "[a-z_]+" \}' "$REPO/shim/cfg.c" |
           sed -E 's/.*, "([a-z_]+)".*/\1/')
    for key in $keys; do
        grep -qE "^#? *$key *=" "$conf" || missing="$missing $key"
    done
    if [ -z "$keys" ]; then
        fail "fastloop.conf: found no keys in shim/cfg.c's env_keys table (has it changed?)"
    elif [ -n "$missing" ]; then
        fail "fastloop.conf: keys the library knows but the file does not show:$missing"
    else
        pass "fastloop.conf: shows every key of shim/cfg.c ($(echo $keys))"
    fi

    out=$(lib_stderr "$conf")
    if [ -z "$out" ]; then
        pass "fastloop.conf: the library reads it without a warning"
    else
        fail "fastloop.conf: the library says:"; printf '    %s\n' "$out"
    fi

    sed -E 's/^# *([a-z_]+ *=)/\1/' "$conf" > "$TMP/all-on.conf"
    out=$(lib_stderr "$TMP/all-on.conf")
    if [ -z "$out" ]; then
        pass "fastloop.conf: also with its $(grep -cE '^# *[a-z_]+ *=' "$conf") commented-out settings switched on"
    else
        fail "fastloop.conf with the commented-out settings switched on: the library says:"
        printf '    %s\n' "$out"
    fi

    { cat "$conf"; echo "no_such_key = 1"; } > "$TMP/bad.conf"
    out=$(lib_stderr "$TMP/bad.conf")
    if printf '%s\n' "$out" | grep -q 'no_such_key = 1: unknown key'; then
        pass "fastloop.conf: a copy with a bad key is reported (the stderr check works)"
    else
        fail "fastloop.conf: a copy with a bad key was not reported: '${out}'"
    fi

    # At debug level the library prints the settings it ended up with
    # (transport, dir, retain): the same with every setting of the file
    # switched on as without the file.
    local with without
    with=$(lib_stderr "$TMP/all-on.conf" FASTLOOP_LOG=debug | sed -n 's/.*fastloop ready: //p')
    without=$(lib_stderr /dev/null FASTLOOP_LOG=debug | sed -n 's/.*fastloop ready: //p')
    if [ -z "$without" ]; then
        skip "fastloop.conf: defaults not compared (the library no longer prints 'fastloop ready:' at debug level)"
    elif [ "$with" = "$without" ]; then
        pass "fastloop.conf: leaves the defaults ($without)"
    else
        fail "fastloop.conf: changes the defaults: with the file '$with', without '$without'"
    fi
}

# The drop-in next to a throw-away unit; systemd-analyze verify warns on
# stderr (exit status 0) about a bad line, naming the file.
check_systemd() {
    local d=$TMP/systemd unit out rc
    if ! command -v systemd-analyze > /dev/null 2>&1; then
        skip "systemd/fastloop.conf: systemd-analyze not installed"
        return
    fi
    unit=$d/fastloop-example.service
    mkdir -p "$unit.d"
    printf '[Unit]\nDescription=fastloop example\n\n[Service]\nType=oneshot\nExecStart=/bin/true\n' > "$unit"
    cp "$HERE/systemd/fastloop.conf" "$unit.d/fastloop.conf"
    out=$(SYSTEMD_UNIT_PATH=$d: timeout 60 systemd-analyze verify "$unit" 2>&1)
    rc=$?
    if [ $rc = 0 ] && ! printf '%s\n' "$out" | grep -q 'fastloop\.conf'; then
        pass "systemd/fastloop.conf: systemd-analyze verify accepts the drop-in"
    else
        fail "systemd/fastloop.conf: systemd-analyze verify exited $rc:"
        printf '    %s\n' "$out"
    fi
    # the commented-out settings of the [Service] section switched on
    sed '/^\[Service\]/,$ s/^#\([A-Z][A-Za-z]*=\)/\1/' "$HERE/systemd/fastloop.conf" > "$unit.d/fastloop.conf"
    out=$(SYSTEMD_UNIT_PATH=$d: timeout 60 systemd-analyze verify "$unit" 2>&1)
    rc=$?
    if [ $rc = 0 ] && ! printf '%s\n' "$out" | grep -q 'fastloop\.conf'; then
        pass "systemd/fastloop.conf: also with its $(sed -n '/^\[Service\]/,$ p' "$HERE/systemd/fastloop.conf" | grep -c '^#[A-Z][A-Za-z]*=') commented-out settings switched on"
    else
        fail "systemd/fastloop.conf with the commented-out settings switched on: systemd-analyze verify exited $rc:"
        printf '    %s\n' "$out"
    fi
    printf 'NoSuchKey=1\n' >> "$unit.d/fastloop.conf"
    out=$(SYSTEMD_UNIT_PATH=$d: timeout 60 systemd-analyze verify "$unit" 2>&1)
    if printf '%s\n' "$out" | grep -q 'fastloop\.conf.*NoSuchKey'; then
        pass "systemd/fastloop.conf: a bad copy is reported (verify reads the drop-in)"
    else
        fail "systemd/fastloop.conf: verify said nothing about a bad copy (does it read the drop-in?):"
        printf '    %s\n' "$out"
    fi
}

# nginx -t writes the pid file and opens the logs: the copy's pid and
# error_log point into a temp dir, which is also the prefix (-p) for the
# relative temp paths; -e keeps nginx off the default error log.
check_nginx() {
    local d=$TMP/nginx nginx out rc
    nginx=$(command -v nginx || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; })
    if [ -z "$nginx" ]; then
        skip "nginx/nginx.conf: nginx not installed"
        return
    fi
    mkdir -p "$d"
    sed -E -e "s|^( *)pid +[^;]+;|\1pid $d/nginx.pid;|" \
           -e "s|^( *)error_log +[^ ;]+|\1error_log $d/error.log|" \
        "$HERE/nginx/nginx.conf" > "$d/nginx.conf"
    if ! grep -q "^ *pid $d/nginx.pid;" "$d/nginx.conf" ||
       ! grep -q "^ *error_log $d/error.log" "$d/nginx.conf"; then
        fail "nginx/nginx.conf: no top-level pid and error_log lines to point into the temp dir"
        return
    fi
    out=$(timeout 30 "$nginx" -t -q -p "$d/" -e "$d/startup.log" -c "$d/nginx.conf" 2>&1)
    rc=$?
    if [ $rc = 0 ]; then
        pass "nginx/nginx.conf: nginx -t accepts it"
    else
        fail "nginx/nginx.conf: nginx -t exited $rc:"
        printf '    %s\n' "$out"
    fi
    echo "no_such_directive on;" >> "$d/nginx.conf"
    if ! timeout 30 "$nginx" -t -q -p "$d/" -e "$d/startup.log" -c "$d/nginx.conf" > /dev/null 2>&1; then
        pass "nginx/nginx.conf: a bad copy is rejected (nginx -t reads the file)"
    else
        fail "nginx/nginx.conf: nginx -t accepted a copy with an unknown directive"
    fi
}

for tool in timeout mktemp sed grep; do
    command -v "$tool" > /dev/null 2>&1 || { fail "$tool is missing"; finish; }
done
for f in "$LIB" "$BIN/echo-server" "$BIN/echo-client"; do
    [ -f "$f" ] || { fail "$f not found (make all examples)"; finish; }
done
TMP=$(mktemp -d "${TMPDIR:-/tmp}/fastloop-examples.XXXXXX") || { fail "mktemp"; finish; }
chmod 700 "$TMP"

check_echo_both
check_echo_server_only
check_conf
check_systemd
check_nginx
finish
