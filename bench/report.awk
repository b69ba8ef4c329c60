# bench/report.awk — turn bench/run.sh records into markdown tables, plot
# data and the console summary.  POSIX awk (mawk).
#
# Input: tab-separated records "round row test metric value"; round 0 is
# the micro sweep (test "xfer <bytes>"), rounds >= 1 the tool runs.
# Variables: mode = tools | conns | micro | bwdat | latdat | summary;
#   rows  = "id=Label;id=Label;..." (column order; the first is the base)
#   base  = id of the baseline row; cubic = id of the cubic row or "";
#   paper = path of bench/paper-table5.tsv (micro); pct = metric (latdat).

BEGIN {
	FS = "\t"
	nrows = split(rows, rr, ";")
	nr = 0
	for (i = 1; i <= nrows; i++) {
		if (rr[i] == "")
			continue
		eq = index(rr[i], "=")
		nr++
		rid[nr] = substr(rr[i], 1, eq - 1)
		rlabel[nr] = substr(rr[i], eq + 1)
	}
	unit["Mbps"] = "Mbit/s"; unit["rps"] = "req/s"; unit["tps"] = "trans/s"
	unit["conn_per_s"] = "conn/s"; unit["secs"] = "s (all conns)"
	unit["avg_us"] = "avg µs"; unit["p50_us"] = "p50 µs"; unit["p99_us"] = "p99 µs"
	unit["p99.9_us"] = "p99.9 µs"
	unit["cpu_s_per_GB"] = "CPU s/GB"; unit["cpu_s_per_Mtx"] = "CPU s/M trans"
	unit["segs_per_MB"] = "TCP segs/MB"; unit["segs_per_tx"] = "TCP segs/trans"
	unit["idle_pct"] = "% of a core (stat)"; unit["idle_pct_ns"] = "% of a core (schedstat)"
	unit["idle_wakeups"] = "wakeups"
	unit["shmem_B"] = "Shmem B/conn"; unit["pss_shmem_B"] = "Pss_Shmem B/conn"
	unit["seg_B"] = "segment B/conn"; unit["memavail_B"] = "MemAvailable B/conn"
	unit["pss_B"] = "PSS B/conn"; unit["fds_conn"] = "fds/conn, each end"
	section["Mbps"] = 1; section["rps"] = 1; section["tps"] = 1; section["conn_per_s"] = 1
	section["secs"] = 2
	section["avg_us"] = 2; section["p50_us"] = 2; section["p99_us"] = 2; section["p99.9_us"] = 2
	section["cpu_s_per_GB"] = 3; section["cpu_s_per_Mtx"] = 3
	section["segs_per_MB"] = 4; section["segs_per_tx"] = 4
	section["idle_pct"] = 5; section["idle_pct_ns"] = 5; section["idle_wakeups"] = 5
	section["shmem_B"] = 6; section["pss_shmem_B"] = 6; section["seg_B"] = 6
	section["memavail_B"] = 6; section["pss_B"] = 6; section["fds_conn"] = 6
	title[1] = "Throughput (higher is better)"
	title[2] = "Latency (lower is better)"
	title[3] = "CPU cost, both ends (lower is better)"
	title[4] = "TCP segments sent, system-wide (fastloop: near zero)"
	title[5] = "Idle connections: CPU of both processes over the idle window (lower is better)"
	title[6] = "Memory per open connection, both processes (lower is better)"
	# The paper's sizes, in its order, as bytes and as printed.
	nsz = split("16384 32768 65536 131072 262144 524288 1048576 2097152 " \
		    "104857600 209715200 314572800 419430400 524288000 629145600 " \
		    "1073741824 2147483648 3221225472 4294967296", szb, " ")
	split("16 KB,32 KB,64 KB,128 KB,256 KB,512 KB,1 MB,2 MB,100 MB,200 MB," \
	      "300 MB,400 MB,500 MB,600 MB,1 GB,2 GB,3 GB,4 GB", szl, ",")
}

$1 ~ /^#/ { next }
{
	round = $1; row = $2; test = $3; metric = $4; val = $5
	if (val == "")
		next
	if (round == 0 && test ~ /^xfer /) {
		m[test SUBSEP metric SUBSEP row] = val
		next
	}
	if (round == 0)
		next
	if (!(test in tseen)) {
		tseen[test] = 1
		torder[++nt] = test
	}
	if (!((test SUBSEP metric) in mseen)) {
		mseen[test SUBSEP metric] = 1
		nm[test]++
		morder[test SUBSEP nm[test]] = metric
	}
	k = test SUBSEP metric SUBSEP row
	cnt[k]++
	vals[k SUBSEP cnt[k]] = val + 0
}

# Sort vals[k, 1..n] in place (insertion sort: n is small).
function sortk(k, n,    i, j, x) {
	for (i = 2; i <= n; i++) {
		x = vals[k SUBSEP i]
		for (j = i - 1; j >= 1 && vals[k SUBSEP j] > x; j--)
			vals[k SUBSEP (j + 1)] = vals[k SUBSEP j]
		vals[k SUBSEP (j + 1)] = x
	}
}

function med(k,    n) {
	n = cnt[k]
	if (n == 0)
		return ""
	sortk(k, n)
	if (n % 2)
		return vals[k SUBSEP ((n + 1) / 2)]
	return (vals[k SUBSEP (n / 2)] + vals[k SUBSEP (n / 2 + 1)]) / 2
}

# Three significant digits, thousands not grouped.
function fmt(x,    a) {
	if (x == "")
		return "—"
	x += 0
	a = x < 0 ? -x : x
	if (a >= 100)
		return sprintf("%.0f", x)
	if (a >= 10)
		return sprintf("%.1f", x)
	if (a >= 1)
		return sprintf("%.2f", x)
	if (a == 0)
		return "0"
	return sprintf("%.3g", x)
}

function cell(k,    md, n) {
	n = cnt[k]
	if (n == 0)
		return ""
	md = med(k)
	if (n == 1)
		return fmt(md)
	return fmt(md) " [" fmt(vals[k SUBSEP 1]) "–" fmt(vals[k SUBSEP n]) "]"
}

# a ÷ b; "—" unless both are positive (a memory delta of ~0 bytes, which
# noise can make negative, or an idle CPU of 0 ticks has no ratio).
function ratio(a, b) {
	if (a == "" || b == "" || b + 0 <= 0 || a + 0 < 0)
		return "—"
	return sprintf("%.2f×", a / b)
}

# The tables of sections lo..hi: one line per test and metric, a column
# per row, then the ratios to the first row.
function tools_tables(lo, hi,    s, t, i, j, r, k, mt, line, any, bm, hdr, sep, rm, c) {
	for (s = lo; s <= hi; s++) {
		any = 0
		for (t = 1; t <= nt; t++)
			for (i = 1; i <= nm[torder[t]]; i++)
				if (section[morder[torder[t] SUBSEP i]] == s)
					any = 1
		if (!any)
			continue
		hdr = "| test | metric |"
		sep = "|---|---|"
		for (r = 1; r <= nr; r++) {
			hdr = hdr " " rlabel[r] " |"
			sep = sep "---:|"
		}
		for (r = 2; r <= nr; r++) {
			hdr = hdr " " rlabel[r] " ÷ " rlabel[1] " |"
			sep = sep "---:|"
		}
		printf "\n### %s\n\n%s\n%s\n", title[s], hdr, sep
		for (t = 1; t <= nt; t++) {
			for (i = 1; i <= nm[torder[t]]; i++) {
				mt = morder[torder[t] SUBSEP i]
				if (section[mt] != s)
					continue
				line = "| " torder[t] " | " unit[mt] " |"
				for (r = 1; r <= nr; r++) {
					k = torder[t] SUBSEP mt SUBSEP rid[r]
					c = cell(k)
					if (c == "")
						c = (rid[r] == cubic) ? "n/a" : "—"
					line = line " " c " |"
				}
				bm = med(torder[t] SUBSEP mt SUBSEP rid[1])
				for (r = 2; r <= nr; r++) {
					rm = med(torder[t] SUBSEP mt SUBSEP rid[r])
					line = line " " ratio(rm, bm) " |"
				}
				print line
			}
		}
	}
}

# fastloop connections seen per test: transport=<kind> vs transport=tcp.
function engagement(    t, r, k1, k2, kind, line, any, hdr, sep) {
	any = 0
	for (r = 1; r <= nr; r++)
		if (rid[r] ~ /^fl-/)
			any = 1
	if (!any)
		return
	hdr = "| test |"
	sep = "|---|"
	for (r = 1; r <= nr; r++)
		if (rid[r] ~ /^fl-/) {
			hdr = hdr " " rlabel[r] " |"
			sep = sep "---|"
		}
	printf "\n### fastloop connections (from FASTLOOP_LOG, all rounds, both ends)\n\n%s\n%s\n", hdr, sep
	for (t = 1; t <= nt; t++) {
		line = "| " torder[t] " |"
		any = 0
		for (r = 1; r <= nr; r++) {
			if (rid[r] !~ /^fl-/)
				continue
			kind = substr(rid[r], 4)
			k1 = torder[t] SUBSEP "conns_" kind SUBSEP rid[r]
			k2 = torder[t] SUBSEP "conns_tcp" SUBSEP rid[r]
			if (cnt[k1] == 0 && cnt[k2] == 0) {
				line = line " — |"
				continue
			}
			any = 1
			line = line " " sum(k1) " " kind ", " sum(k2) " tcp |"
		}
		if (any)
			print line
	}
}

function sum(k,    i, s) {
	s = 0
	for (i = 1; i <= cnt[k]; i++)
		s += vals[k SUBSEP i]
	return s
}

function micro_tables(    i, r, line, hdr, sep, k, p, n, pv, have, ib, ibm) {
	# paper values by size index
	n = 0
	while ((getline p < paper) > 0) {
		if (p ~ /^#/ || p == "")
			continue
		split(p, pv, "\t")
		n++
		puds[n] = pv[2]; pshm[n] = pv[3]; ppipe[n] = pv[4]
	}
	close(paper)
	have = 0
	for (i = 1; i <= nsz; i++)
		for (r = 1; r <= nr; r++)
			if (("xfer " szb[i] SUBSEP "Mbps" SUBSEP rid[r]) in m)
				have = 1
	print "\n## Table V, then and now: sender sends x bytes, receiver confirms all x (Mbit/s)\n"
	print "Paper: Intel Pentium Dual Core E2200 2.2 GHz, Ubuntu 12.04, average of 20 runs " \
	      "(its Table V, reprinted as published). Today: bench/micro (xfer_tcp, xfer_ipc), " \
	      "median of the timed repetitions, sizes in binary units (16 KB = 16 KiB, " \
	      "1 GB = 1 GiB), 256 KiB writes, 1 MiB shm ring.\n"
	hdr = "| size | paper UDS | paper shm | paper pipes |"
	sep = "|---|---:|---:|---:|"
	for (r = 1; r <= nr; r++) {
		hdr = hdr " " rlabel[r] " |"
		sep = sep "---:|"
	}
	print hdr
	print sep
	for (i = 1; i <= nsz; i++) {
		line = sprintf("| %s | %.0f | %.0f | %.0f |", szl[i], puds[i], pshm[i], ppipe[i])
		for (r = 1; r <= nr; r++) {
			k = "xfer " szb[i] SUBSEP "Mbps" SUBSEP rid[r]
			line = line " " ((k in m) ? fmt(m[k]) mark(i, r) : "—") " |"
		}
		print line
	}
	if (!have)
		return
	print "\n### Micro-benchmark detail: median [min–max] Mbit/s over the timed repetitions\n"
	print "† fastloop fell back to TCP on that connection (FASTLOOP_LOG said transport=tcp): the number is plain TCP.\n"
	hdr = "| size | reps |"
	sep = "|---|---:|"
	for (r = 1; r <= nr; r++) {
		hdr = hdr " " rlabel[r] " |"
		sep = sep "---:|"
	}
	print hdr
	print sep
	for (i = 1; i <= nsz; i++) {
		if ((k = repkey(i)) == "")
			continue
		line = "| " szl[i] " | " m[k] " |"
		for (r = 1; r <= nr; r++) {
			ib = "xfer " szb[i] SUBSEP
			if ((ib "Mbps" SUBSEP rid[r]) in m)
				line = line " " fmt(m[ib "Mbps" SUBSEP rid[r]]) mark(i, r) " [" \
				       fmt(m[ib "Mbps_min" SUBSEP rid[r]]) "–" \
				       fmt(m[ib "Mbps_max" SUBSEP rid[r]]) "] |"
			else
				line = line " — |"
		}
		print line
	}
	print "\n### Micro-benchmark: ratios to " rlabel[1] " (medians) and CPU seconds per GB, both ends\n"
	hdr = "| size |"
	sep = "|---|"
	for (r = 2; r <= nr; r++) {
		hdr = hdr " " rlabel[r] " ÷ " rlabel[1] " |"
		sep = sep "---:|"
	}
	for (r = 1; r <= nr; r++) {
		hdr = hdr " CPU s/GB " rlabel[r] " |"
		sep = sep "---:|"
	}
	print hdr
	print sep
	for (i = 1; i <= nsz; i++) {
		if (repkey(i) == "")
			continue
		line = "| " szl[i] " |"
		ibm = m["xfer " szb[i] SUBSEP "Mbps" SUBSEP rid[1]]
		for (r = 2; r <= nr; r++)
			line = line " " ratio(m["xfer " szb[i] SUBSEP "Mbps" SUBSEP rid[r]], ibm) mark(i, r) " |"
		for (r = 1; r <= nr; r++) {
			k = "xfer " szb[i] SUBSEP "cpu_s_per_GB" SUBSEP rid[r]
			line = line " " ((k in m) ? fmt(m[k]) : "—") " |"
		}
		print line
	}
}

# "†" when the fastloop row of size i fell back to TCP.
function mark(i, r) {
	return (("xfer " szb[i] SUBSEP "fallback" SUBSEP rid[r]) in m) ? "†" : ""
}

# The key of size i's repetition count, from any row that has one, or "".
function repkey(i,    r, k) {
	for (r = 1; r <= nr; r++) {
		k = "xfer " szb[i] SUBSEP "reps" SUBSEP rid[r]
		if (k in m)
			return k
	}
	return ""
}

function bwdat(    i, r, line, k, any) {
	line = "size"
	for (r = 1; r <= nr; r++)
		line = line "\t\"" rlabel[r] "\""
	print line
	for (i = 1; i <= nsz; i++) {
		line = szb[i]
		any = 0
		for (r = 1; r <= nr; r++) {
			k = "xfer " szb[i] SUBSEP "Mbps" SUBSEP rid[r]
			# a fastloop point that fell back to TCP is not plotted
			if ((k in m) && mark(i, r) == "") {
				line = line "\t" m[k]
				any = 1
			} else
				line = line "\t-"
		}
		if (any)
			print line
	}
}

function latdat(    t, r, line, k, sz, any, n, order, i, j, x) {
	# sockperf sizes in ascending order
	n = 0
	for (t = 1; t <= nt; t++)
		if (torder[t] ~ /^sockperf pp [0-9]+ B$/) {
			sz = torder[t]
			sub(/^sockperf pp /, "", sz)
			sub(/ B$/, "", sz)
			order[++n] = sz + 0
		}
	for (i = 2; i <= n; i++) {
		x = order[i]
		for (j = i - 1; j >= 1 && order[j] > x; j--)
			order[j + 1] = order[j]
		order[j + 1] = x
	}
	line = "size"
	for (r = 1; r <= nr; r++)
		line = line "\t\"" rlabel[r] "\""
	print line
	for (i = 1; i <= n; i++) {
		line = order[i]
		any = 0
		for (r = 1; r <= nr; r++) {
			k = "sockperf pp " order[i] " B" SUBSEP pct SUBSEP rid[r]
			if (cnt[k] > 0) {
				line = line "\t" med(k)
				any = 1
			} else
				line = line "\t-"
		}
		if (any)
			print line
	}
}

function summary(    t, i, mt, r, k, line, bm, rm, s) {
	for (t = 1; t <= nt; t++)
		for (i = 1; i <= nm[torder[t]]; i++) {
			mt = morder[torder[t] SUBSEP i]
			s = section[mt]
			if (s != 1 && s != 2 && !(s == 3 && mt == "cpu_s_per_GB") &&
			    mt != "idle_pct_ns" && mt != "shmem_B" && mt != "memavail_B" && mt != "pss_B")
				continue
			if (s == 2 && mt != "p50_us" && mt != "avg_us")
				continue
			bm = med(torder[t] SUBSEP mt SUBSEP rid[1])
			line = sprintf("  %-30s %-13s", torder[t], unit[mt])
			for (r = 1; r <= nr; r++) {
				k = torder[t] SUBSEP mt SUBSEP rid[r]
				if (cnt[k] == 0)
					continue
				rm = med(k)
				line = line sprintf("  %s %s", rlabel[r], fmt(rm))
				if (r > 1)
					line = line " (" ratio(rm, bm) ")"
			}
			print line
		}
	for (i = 1; i <= nsz; i++) {
		line = ""
		for (r = 1; r <= nr; r++) {
			k = "xfer " szb[i] SUBSEP "Mbps" SUBSEP rid[r]
			if (k in m)
				line = line sprintf("  %s %s", rlabel[r], fmt(m[k]))
		}
		if (line != "")
			printf "  %-30s %-13s%s\n", "micro xfer " szl[i], "Mbit/s", line
	}
}

END {
	if (mode == "tools") {
		print "## Tools, A/B"
		tools_tables(1, 4)
		engagement()
	} else if (mode == "conns")
		tools_tables(5, 6)
	else if (mode == "micro")
		micro_tables()
	else if (mode == "bwdat")
		bwdat()
	else if (mode == "latdat")
		latdat()
	else if (mode == "summary")
		summary()
}
