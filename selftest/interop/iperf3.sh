#!/usr/bin/env bash
# selftest/interop/iperf3.sh — unmodified iperf3 (control connection plus
# data connections, one-off server) in the three setups: a single stream,
# four parallel streams (-P 4) and reverse mode (-R, the server sends).
# Data check on the JSON of client and server: bytes sent >= requested -n,
# 0 < received <= sent, and both JSONs agree on the count received.
#
# Exact received == sent is not an iperf3 property: the test ends by a
# message on the control connection while data can still be queued in the
# data sockets (forward: the receiver stops reading at TEST_END; reverse:
# the sender overshoots the -n it was given). On plain loopback TCP we
# measured gaps of 0, 106 B, 64 KiB, 0.6 MB (-P 4) and 6.1 MiB (one full
# receive buffer). Rule used: the gap per stream may be at most what the
# kernel can hold queued for one TCP connection (tcp_rmem max + tcp_wmem
# max, ~10 MiB by default), and in reverse mode (the receiving client decides
# the end) received must reach the requested byte count exactly or more.
. "$(dirname "$0")/lib.sh"
fl_init iperf3
fl_need iperf3 python3

BYTES=${IPERF3_BYTES:-268435456}     # 256 MiB per run
SLACK=${IPERF3_SLACK:-$(( $(awk '{print $3}' /proc/sys/net/ipv4/tcp_rmem) + $(awk '{print $3}' /proc/sys/net/ipv4/tcp_wmem) ))}

# check_json CLIENT_JSON SERVER_JSON — byte counts of one run.
check_json() {
    "$PY" - "$1" "$2" "$BYTES" "$SLACK" <<'EOF'
import json, sys
def load(p):
    t = open(p, errors="replace").read()
    i = t.find("{")
    if i < 0:
        raise SystemExit("no JSON in %s: %r" % (p, t[:300]))
    return json.loads(t[i:])
cj, sj = load(sys.argv[1]), load(sys.argv[2])
want, slack = int(sys.argv[3]), int(sys.argv[4])
for name, j in (("client", cj), ("server", sj)):
    if "error" in j:
        raise SystemExit("%s reports error: %s" % (name, j["error"]))
rev = cj["start"]["test_start"]["reverse"]
ce, se = cj["end"], sj["end"]
sent, recv = ce["sum_sent"]["bytes"], ce["sum_received"]["bytes"]
# the side that received writes its own count into its own JSON
srecv = se["sum_received"]["bytes"] if not rev else recv
errs = []
if sent < want: errs.append("sent %d < requested %d" % (sent, want))
if recv <= 0: errs.append("received %d" % recv)
if recv > sent: errs.append("received %d > sent %d" % (recv, sent))
n = cj["start"]["test_start"]["num_streams"]
if sent - recv > slack * n: errs.append("gap %d bytes > %d per stream (sent %d, received %d)" % (sent - recv, slack, sent, recv))
if rev and recv < want: errs.append("reverse: received %d < requested %d" % (recv, want))
if srecv != recv: errs.append("server JSON says received %d, client JSON %d" % (srecv, recv))
if len(ce["streams"]) != n: errs.append("%d streams in JSON, %d asked" % (len(ce["streams"]), n))
gbps = ce["sum_received"]["bits_per_second"] / 1e9
print("streams=%d reverse=%d sent=%d received=%d%s %.2f Gbit/s" % (
    n, rev, sent, recv, "" if sent == recv else " (gap %d, allowed)" % (sent - recv), gbps))
if errs:
    raise SystemExit("; ".join(errs))
EOF
}

# one_run TAG OPTS... — one-off server, one client run, check the JSON.
one_run() {
    local tag=$1 spid cj sj; shift
    cj=$FL_TMP/$FL_PHASE.$tag.client.json
    sj=$FL_TMP/$FL_PHASE.iperf3-s-$tag.out
    fl_bg "iperf3-s-$tag" "$SRV" iperf3 -s -1 -p "$PORT" -J
    spid=$FL_LAST_PID
    fl_wait_listen "$PORT" "$spid" || return
    if ! fl_run "$CLI" 30 iperf3 -c 127.0.0.1 -p "$PORT" -n "$BYTES" -J "$@" > "$cj" 2> "$cj.err"; then
        fl_fail "iperf3 client $* failed"; tail -n 5 "$cj" "$cj.err"; fl_stop "$spid"; return
    fi
    fl_wait_exit "$spid" 15 || { fl_fail "iperf3 -s -1 did not exit after the run"; fl_stop "$spid"; }
    local out
    if out=$(check_json "$cj" "$sj" 2>&1); then
        fl_say "[$FL_PHASE] $tag: $out"
    else
        fl_fail "$tag: $out"
    fi
}

scenario() {
    fl_newport PORT
    one_run single
    one_run reverse -R
    one_run parallel -P 4
    one_run parallel-reverse -P 4 -R
}

fl_matrix scenario
fl_finish
