#!/usr/bin/env bash
# selftest/interop/tcp-proof.sh — proof that the bytes did not cross TCP.
#
# Reads Tcp OutSegs from /proc/net/snmp around a 1 GiB iperf3 transfer
# (-n 1G), once with both ends plain (calibration) and once with both ends
# preloaded. OutSegs counts every TCP segment sent in this network namespace,
# data and pure ACKs alike, per MSS-sized segment before GSO/TSO splitting
# (tcp_skb_pcount), so a plain 1 GiB loopback transfer is ~16k data segments
# of ~64 KiB plus the receiver's ACKs: we measured ~31.6k.
#
# Rule: the preloaded transfer must send fewer than 1 % of the segments the
# plain transfer of the same bytes sent in this very run
# (100 * fast_segs < plain_segs). What remains for the preloaded run is the
# iperf3 control connection and the handshakes/FINs of the data connection.
#
# As root, the script re-runs itself in a private network namespace
# (unshare -n, loopback up) so that no other process's TCP traffic is
# counted; otherwise it says that its counts include the host's traffic.
if [ -z "${FL_IN_NETNS:-}" ] && [ "$(id -u)" = 0 ] && command -v unshare > /dev/null &&
   unshare -n true 2> /dev/null; then
    FL_IN_NETNS=1 exec unshare -n bash "$0" "$@"
fi
. "$(dirname "$0")/lib.sh"
fl_init tcp-proof
fl_need iperf3 python3
if [ "${FL_IN_NETNS:-}" = 1 ]; then
    ip link set lo up || fl_skip "cannot bring up lo in a private netns"
    fl_say "private network namespace: only this test's TCP is counted"
else
    fl_say "NOTE: shared network namespace (not root): other TCP traffic on this host adds to the counts"
fi

BYTES=1073741824

# out_segs — current Tcp OutSegs of this network namespace.
out_segs() {
    awk '/^Tcp:/ { if (!hdr) { for (i = 1; i <= NF; i++) if ($i == "OutSegs") col = i; hdr = 1 }
                   else print $col }' /proc/net/snmp
}

# transfer MODE — 1 GiB from client to server, both under MODE; sets
# SEGS and RECV (bytes the server received) on success. Runs in this shell,
# not in $(...), so that its port and server PID are recorded.
transfer() {
    local mode=$1 port spid s0 s1 cj res
    fl_newport port
    cj=$FL_TMP/$FL_PHASE.client.json
    fl_bg iperf3-s "$mode" iperf3 -s -1 -p "$port" -J
    spid=$FL_LAST_PID
    fl_wait_listen "$port" "$spid" || return 1
    s0=$(out_segs)
    if ! fl_run "$mode" 60 iperf3 -c 127.0.0.1 -p "$port" -n "$BYTES" -J > "$cj" 2> "$cj.err"; then
        fl_fail "iperf3 -n 1G ($mode) failed"; tail -n 5 "$cj" "$cj.err"; return 1
    fi
    fl_wait_exit "$spid" 15 || { fl_fail "iperf3 server did not exit"; return 1; }
    s1=$(out_segs)
    res=$("$PY" - "$cj" "$FL_TMP/$FL_PHASE.iperf3-s.out" "$BYTES" "$((s1 - s0))" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))["end"]
t = open(sys.argv[2], errors="replace").read()
s = json.loads(t[t.find("{"):])["end"]
sent, recv, want = c["sum_sent"]["bytes"], s["sum_received"]["bytes"], int(sys.argv[3])
if sent < want or recv <= 0 or recv > sent:
    raise SystemExit("bad byte counts: sent %d received %d (asked %d)" % (sent, recv, want))
print(sys.argv[4], recv)
EOF
    ) || { fl_fail "$mode: $res"; return 1; }
    read -r SEGS RECV <<< "$res"
}

fl_phase plain
transfer plain || fl_finish
plain_segs=$SEGS plain_bytes=$RECV
fl_say "[plain] $plain_bytes bytes in $plain_segs TCP segments ($((plain_bytes / (plain_segs > 0 ? plain_segs : 1))) B/segment incl. ACKs)"
[ "$plain_segs" -ge 1000 ] || fl_fail "calibration: plain 1 GiB sent only $plain_segs segments; OutSegs not counting loopback?"

fl_phase both
if transfer pre; then
    fast_segs=$SEGS fast_bytes=$RECV
    limit=$((plain_segs / 100))
    if [ $((100 * fast_segs)) -lt "$plain_segs" ]; then
        fl_say "[both] $fast_bytes bytes in $fast_segs TCP segments: $(awk -v f="$fast_segs" -v p="$plain_segs" 'BEGIN{printf "%.3f", 100*f/p}') % of plain (limit: < 1 %, i.e. < $limit)"
    else
        fl_fail "TCP carried $fast_segs segments for the preloaded 1 GiB transfer, plain took $plain_segs: not < 1 % ($limit)"
    fi
fi
fl_end_phase
fl_expect_fast "${FL_PORTS[@]}"
fl_finish
