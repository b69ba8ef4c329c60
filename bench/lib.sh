# bench/lib.sh — helpers shared by bench/run.sh and bench/demo.sh.
# Sourced, not run.  Expects ROOT and TMP to be set by the caller.
#
# Every server is started in the background by start_server, remembered by
# PID and stopped by that PID only (stop_server / stop_all_servers); every
# wait is bounded; only 127.0.0.1 ports are used.

LIB=${LIB:-$ROOT/build/libfastloop.so}
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
declare -A SRV_PID=()      # server name -> pid
declare -A SRV_LOG=()      # server name -> fastloop log file ("" if plain)
declare -A SRV_PORT=()     # server name -> the port it must listen on
declare -A SRV_CMD=()      # server name -> its command line, for messages
declare -A USED_PORT=()    # ports handed out in this run

# FL_EXTRA: more FASTLOOP_* settings for the fl-* rows of one test.
FL_EXTRA=()

# fl_env ROW LOGFILE: fill the array FLENV with the environment of ROW.
# Rows: tcp-* (plain), fl-uds / fl-shm (both ends preloaded), or
# "plain" / "fl-uds" for one end of a mixed pair.
fl_env() {
    local row=$1 log=$2
    FLENV=()
    case $row in
        fl-*) FLENV=(LD_PRELOAD="$LIB" FASTLOOP_TRANSPORT="${row#fl-}"
                     FASTLOOP_LOG=info FASTLOOP_LOG_FILE="$log" "${FL_EXTRA[@]}") ;;
    esac
}

# port_listening PORT: true if something listens on PORT.
port_listening() {
    [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
}

# port_in_use PORT: true if any TCP socket (any state) has local port PORT.
port_in_use() {
    [ -n "$(ss -Htan "sport = :$1" 2>/dev/null)" ]
}

# free_port: set FREE_PORT to a port below the ephemeral range (so no
# client connection can hold it) that no socket uses and that this run has
# not handed out yet.  Bounded number of tries.
free_port() {
    local p i lo
    lo=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null)
    [ -z "$lo" ] || [ "$lo" -le 11000 ] && lo=32768
    for ((i = 0; i < 500; i++)); do
        p=$((10000 + (RANDOM * 32768 + RANDOM) % (lo - 10000)))
        [ -n "${USED_PORT[$p]:-}" ] && continue
        port_in_use "$p" && continue
        USED_PORT[$p]=1
        FREE_PORT=$p
        return 0
    done
    echo "free_port: no free port found" >&2
    return 1
}

# crr_ports: the kernel's ephemeral range as LO,HI for netperf TCP_CRR's -p.
# netperf binds its CRR client ports itself, 5000-65535 by default, and
# leaves TIME-WAIT on nearly all of them, so free_port finds nothing below
# the ephemeral range for a minute after a run.
crr_ports() {
    local lo hi
    read -r lo hi < /proc/sys/net/ipv4/ip_local_port_range
    echo "$lo,$hi"
}

# wait_listen PORT PID SECONDS: wait until PORT listens; fail early if PID died.
wait_listen() {
    local port=$1 pid=$2 secs=$3 i
    for ((i = 0; i < secs * 20; i++)); do
        port_listening "$port" && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# start_server NAME ROW PORT CMD...: start CMD (with ROW's environment) in
# the background, output in $TMP/srv-NAME.out, and wait for PORT to listen
# (await_server) — unless SRV_DEFER_WAIT is set: the caller then starts
# several and awaits each.
start_server() {
    local name=$1 row=$2 port=$3; shift 3
    local log="$TMP/srv-$name.fl.log" pid
    fl_env "$row" "$log"
    : >"$log"
    env "${FLENV[@]}" $PIN_SERVER "$@" >"$TMP/srv-$name.out" 2>&1 </dev/null &
    pid=$!
    SRV_PID[$name]=$pid
    SRV_LOG[$name]=$log
    SRV_PORT[$name]=$port
    SRV_CMD[$name]="$*"
    [ -n "${SRV_DEFER_WAIT:-}" ] && return 0
    await_server "$name"
}

# await_server NAME: wait until NAME listens; stop it and fail if it does
# not within 10 s.
await_server() {
    local name=$1 port=${SRV_PORT[$1]:-} pid=${SRV_PID[$1]:-}
    [ -z "$pid" ] && return 1
    if ! wait_listen "$port" "$pid" 10; then
        echo "server $name (${SRV_CMD[$name]}) did not listen on 127.0.0.1:$port; its output:" >&2
        tail -n 5 "$TMP/srv-$name.out" >&2
        stop_server "$name"
        return 1
    fi
    return 0
}

# stop_server NAME: TERM, up to 3 s, then KILL; by PID only.
stop_server() {
    local name=$1 pid=${SRV_PID[$1]:-} i
    [ -z "$pid" ] && return 0
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 30; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    unset 'SRV_PID[$name]'
    return 0
}

# stop_all_servers: TERM every server at once, wait up to 3 s for all,
# then stop_server each (KILLs a straggler, reaps).
stop_all_servers() {
    local n i alive
    for n in "${!SRV_PID[@]}"; do
        kill -TERM "${SRV_PID[$n]}" 2>/dev/null
    done
    for ((i = 0; i < 30; i++)); do
        alive=0
        for n in "${!SRV_PID[@]}"; do
            kill -0 "${SRV_PID[$n]}" 2>/dev/null && { alive=1; break; }
        done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for n in "${!SRV_PID[@]}"; do
        stop_server "$n"
    done
}

# proc_ticks PID: utime+stime of PID plus its reaped children (cutime,
# cstime) plus utime+stime of its live children (nginx workers).
proc_ticks() {
    local pid=$1 total=0 c line
    [ -r "/proc/$pid/stat" ] || { echo 0; return; }
    line=$(cat "/proc/$pid/stat" 2>/dev/null) || { echo 0; return; }
    line=${line##*) }
    set -- $line
    # after "comm) ": field 3 is state; utime is field 14 overall = $12 here
    total=$(( ${12} + ${13} + ${14} + ${15} ))
    for c in $(pgrep -P "$pid" 2>/dev/null); do
        line=$(cat "/proc/$c/stat" 2>/dev/null) || continue
        line=${line##*) }
        set -- $line
        total=$(( total + ${12} + ${13} ))
    done
    echo "$total"
}

# server_ticks NAME
server_ticks() {
    local pid=${SRV_PID[$1]:-}
    [ -z "$pid" ] && { echo 0; return; }
    proc_ticks "$pid"
}

# tcp_outsegs: the system-wide TcpOutSegs counter from /proc/net/snmp.
tcp_outsegs() {
    awk '/^Tcp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "OutSegs") c = i; h = 1 }
                   else { print $c; exit } }' /proc/net/snmp
}

# count_transport FILE KIND: lines of FILE containing transport=KIND.
count_transport() {
    local n=0
    [ -s "$1" ] && n=$(grep -c "transport=$2" "$1" 2>/dev/null)
    echo "${n:-0}"
}

# count_long_tcp LOG...: the connection ends that stayed TCP although they
# lived long enough to switch (short-lived ones, a request and a response,
# stay TCP by design: server reason=short-lived, client reason=revoked).
count_long_tcp() {
    local n
    n=$(cat "$@" 2>/dev/null | grep "transport=tcp" | grep -cvE "reason=(short-lived|revoked)$")
    echo "${n:-0}"
}

# maybe_enter_netns SCRIPT ARGS...: re-run SCRIPT in a private network
# namespace with only a loopback interface (root, unshare and ip needed;
# FASTLOOP_BENCH_NETNS=0 turns it off).  Loopback behaves as on the host
# (the namespace starts with the host's TCP settings), no port can clash
# with other work on the machine, and /proc/net/snmp counts only our
# segments.  Sets NETNS_NOTE for the report.  Returns (stays here) when
# the namespace cannot be used.
maybe_enter_netns() {
    NETNS_NOTE="host network namespace"
    if [ -n "${FASTLOOP_BENCH_IN_NETNS:-}" ]; then
        if ip link set lo up 2>/dev/null; then
            NETNS_NOTE="private network namespace (unshare --net): TCP counters are this run's only"
            # getaddrinfo(AI_ADDRCONFIG), used by netperf for -H 127.0.0.1,
            # finds no IPv4 address "configured" when 127.0.0.1 is the only
            # one (glibc does not count it) and fails with EAI_NONAME; a
            # second loopback address (on lo, not used by any test) fixes that.
            ip addr add 127.0.0.2/8 dev lo 2>/dev/null || true
        else
            NETNS_NOTE="private network namespace, but 'ip link set lo up' failed"
        fi
        return 0
    fi
    [ "${FASTLOOP_BENCH_NETNS:-1}" = 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || return 0
    command -v unshare >/dev/null 2>&1 && command -v ip >/dev/null 2>&1 || return 0
    unshare --net true 2>/dev/null || return 0
    export FASTLOOP_BENCH_IN_NETNS=1
    exec unshare --net -- "$@"
}

# write_nginx_conf DIR PORT: DIR/nginx.conf for nginx (2 workers, sendfile)
# serving DIR/www on 127.0.0.1:PORT, its files in DIR.
write_nginx_conf() {   # DIR PORT
    local dir=$1
    local user_line=""
    # Workers run as the client's user, so both ends of a connection are
    # the same user (fastloop's registry is per user).
    [ "$(id -u)" -eq 0 ] && user_line="user $(id -un) $(id -gn);"
    cat >"$dir/nginx.conf" <<EOF
$user_line
daemon off;
master_process on;
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    server { listen 127.0.0.1:$2; root $dir/www; }
}
EOF
}
