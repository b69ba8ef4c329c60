# bench/plot.gp — PNG plots for bench/run.sh.
# Variables (gnuplot -e): bw (bandwidth data), paper (Table V data),
# lat (prefix of lat-p50.dat, lat-p99.dat, lat-p99.9.dat), out (prefix of
# the PNGs), title.
#
# 1. <out>-bw.png: bandwidth vs transfer size, log x and y, one line per
#    transport today, the paper's three as dashed lines (like its Fig. 1);
#    fastloop points whose connection fell back to TCP are left out.
# 2. <out>-lat.png: sockperf ping-pong latency percentiles per message size,
#    one panel per percentile, one line per row.

set terminal pngcairo size 1100,700 enhanced font "DejaVu Sans,10"
set datafile separator "\t"
set datafile missing "-"
set key outside right top
set grid
set logscale x 2
set logscale y 10

# --- bandwidth vs size
set output out."-bw.png"
set title "Sender sends x bytes, receiver confirms (".title.")"
set xlabel "transfer size"
set ylabel "Mbit/s"
set format y "%.0s%c"
set xtics ("16K" 16384, "64K" 65536, "256K" 262144, "1M" 1048576, \
           "4M" 4194304, "16M" 16777216, "64M" 67108864, "256M" 268435456, \
           "1G" 1073741824, "4G" 4294967296)
stats bw using 1 nooutput
ncol = STATS_columns
# Paper sizes are printed in MB (0.016 = 16 KB): map them onto the same
# binary axis as today's sizes.
psize(mb) = mb < 1 ? mb * 1000 * 1024 : (mb < 1000 ? mb * 1048576 : mb / 1000 * 1073741824)
plot for [i=2:ncol] bw using 1:i with linespoints lw 2 pt 7 ps 0.8 title columnheader(i), \
     paper using (psize($1)):2 with lines dt 2 lw 1.5 lc rgb "#7f7f7f" title "paper 2008: UDS", \
     paper using (psize($1)):3 with lines dt 3 lw 1.5 lc rgb "#4d4d4d" title "paper 2008: shared memory", \
     paper using (psize($1)):4 with lines dt 4 lw 1.5 lc rgb "#a0a0a0" title "paper 2008: pipes"
unset output

# --- latency percentiles per message size
f50 = lat."-p50.dat"
f99 = lat."-p99.dat"
f999 = lat."-p99.9.dat"
stats f50 using 1 nooutput
nl = STATS_records
if (nl > 0) {
    set output out."-lat.png"
    set terminal pngcairo size 1400,500 enhanced font "DejaVu Sans,10"
    set multiplot layout 1,3 title "sockperf ping-pong latency, half round trip (".title.")"
    set xlabel "message size (bytes)"
    set ylabel "µs"
    set format y "%g"
    set xrange [10:100000]
    set xtics ("16" 16, "64" 64, "256" 256, "1K" 1024, "4K" 4096, "16K" 16384, "64K" 65536)
    set key inside left top
    stats f50 using 1 nooutput
    nc = STATS_columns
    set title "p50"
    plot for [i=2:nc] f50 using 1:i with linespoints lw 2 pt 7 title columnheader(i)
    set title "p99"
    plot for [i=2:nc] f99 using 1:i with linespoints lw 2 pt 7 title columnheader(i)
    set title "p99.9"
    plot for [i=2:nc] f999 using 1:i with linespoints lw 2 pt 7 title columnheader(i)
    unset multiplot
    unset output
}
