#!/usr/bin/env bash
# selftest/interop/nginx.sh — unmodified nginx (master + 2 workers, sendfile
# on, own config in a temp dir, foreground) with wrk and curl in the three
# setups, plus (as root) a fourth with nginx's default workers as "nobody"
# (see "uid" below). The preloaded nginx is configured by a FASTLOOP_CONFIG
# file only, since nginx empties its workers' environment.
# Data check: wrk with keep-alive and with "Connection: close" (one TCP
# connection per request) makes requests with no socket error and no non-2xx
# answer; curl downloads a 10 MiB random file whose sha256 matches; the
# error log has no alert/crit/emerg line (a crashed worker is an alert).
. "$(dirname "$0")/lib.sh"
fl_init nginx
fl_need nginx:nginx-light wrk curl

WWW=$FL_TMP/www
mkdir -p "$WWW"
head -c 10485760 /dev/urandom > "$WWW/big.bin"
printf 'fastloop interop\n' > "$WWW/index.html"
chmod -R a+rX "$WWW"
WANT=$(fl_sha "$WWW/big.bin")

# conf DIR PORT — write DIR/nginx.conf for 127.0.0.1:PORT.
conf() {
    local user=
    # as root the workers would switch to "nobody": keep one uid on both
    # ends, except in the "uid" setup that tests exactly that default
    [ "$(id -u)" = 0 ] && [ "${NGINX_DEFAULT_USER:-0}" = 0 ] && user="user root;"
    mkdir -p "$1"
    cat > "$1/nginx.conf" <<EOF
$user
worker_processes 2;
daemon off;
master_process on;
pid $1/nginx.pid;
error_log $1/error.log warn;
env FASTLOOP_CONFIG;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    client_body_temp_path $1/body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
    server {
        listen 127.0.0.1:$2;
        root $WWW;
    }
}
EOF
}

# wrk_run TAG OPTS... — a short wrk run: requests > 0, no socket error,
# no non-2xx/3xx response.
wrk_run() {
    local tag=$1 out res; shift
    out=$FL_TMP/$FL_PHASE.wrk-$tag.out
    if ! fl_run "$CLI" 20 wrk -t 2 "$@" "http://127.0.0.1:$PORT/index.html" > "$out" 2>&1; then
        fl_fail "wrk $tag exited non-zero"; cat "$out"; return
    fi
    if res=$(awk '
        / requests in / { n = $1 }
        /Socket errors:/ { gsub(/,/, ""); err = $4 + $6 + $8 + $10; errline = $0 }
        /Non-2xx or 3xx responses:/ { non2xx = $NF }
        /^Requests\/sec:/ { rps = $2 }
        END { printf "requests=%d rps=%s socket-errors=%d non-2xx=%d %s", n, rps, err, non2xx, errline
              exit !(n > 0 && err == 0 && non2xx == 0) }' "$out"); then
        fl_say "[$FL_PHASE] wrk $tag: $res"
    else
        fl_fail "wrk $tag: $res"; cat "$out"
    fi
}

scenario() {
    local spid dir mode got code
    fl_newport PORT
    dir=$FL_TMP/nginx-$FL_PHASE
    conf "$dir" "$PORT"
    mode=$SRV; [ "$mode" = pre ] && mode=precfg
    fl_bg nginx "$mode" nginx -p "$dir" -c "$dir/nginx.conf"
    spid=$FL_LAST_PID
    fl_wait_listen "$PORT" "$spid" || { cat "$dir/error.log" 2>/dev/null; return; }
    wrk_run keepalive -c 16 -d 2s
    wrk_run close -c 8 -d 1s -H 'Connection: close'
    rm -f "$FL_TMP/$FL_PHASE.big.bin"
    code=$(fl_run "$CLI" 30 curl -sS --max-time 25 -o "$FL_TMP/$FL_PHASE.big.bin" -w '%{http_code}' "http://127.0.0.1:$PORT/big.bin")
    got=$(fl_sha "$FL_TMP/$FL_PHASE.big.bin" 2>/dev/null)
    if [ "$code" = 200 ] && [ "$got" = "$WANT" ]; then
        fl_say "[$FL_PHASE] curl 10 MiB: HTTP 200, sha256 ${WANT:0:16}... matches"
    else
        fl_fail "curl 10 MiB: HTTP '$code', sha256 want $WANT got ${got:-none} ($(stat -c %s "$FL_TMP/$FL_PHASE.big.bin" 2>/dev/null || echo 0) bytes)"
    fi
    [ "$(grep -c . < <(fl_descendants "$spid"))" -ge 3 ] ||
        fl_fail "expected nginx master + 2 workers, found: $(fl_descendants "$spid" | tr '\n' ' ')"
    fl_stop "$spid"
    if grep -E '\[(alert|crit|emerg)\]' "$dir/error.log" > /dev/null 2>&1; then
        fl_fail "nginx error log has alert/crit/emerg lines:"
        grep -E '\[(alert|crit|emerg)\]' "$dir/error.log" | head -n 5
    fi
}

fl_matrix scenario

# Setup "uid" (root only): nginx's default, master as root and workers as
# "nobody", both ends preloaded. The workers inherit the listener (and its
# handshake file) from root but run as another user than the clients:
# whether the library then uses the fast path or stays TCP, every byte must
# arrive and both ends must agree, per connection, on what they use.
case " ${FL_SETUPS:-uid} " in *" uid "*) UID_SETUP=1 ;; *) UID_SETUP=0 ;; esac
if [ "$(id -u)" = 0 ] && [ $UID_SETUP = 1 ]; then
    f0=$FL_FAILS
    fl_phase uid
    SRV=pre CLI=pre NGINX_DEFAULT_USER=1
    chmod 711 "$FL_TMP"          # let "nobody" reach the document root
    scenario
    fl_end_phase
    fl_expect_consistent "${FL_PORTS[@]}"
    fl_say "[uid] $([ $FL_FAILS = "$f0" ] && echo pass || echo FAIL) in $((SECONDS - FL_PHASE_T0))s"
fi
fl_finish
