# bench/bench.mk — included by the root Makefile.
#
#   make bench        full A/B run (< 30 min): bench/results/<host>-<date>.md
#   make bench-quick  short A/B run (< 3 min): bench/results/<host>-<date>-quick.md
#   make bench-smoke  end-to-end harness check (< 60 s), called by `make check`;
#                     fails on a tool error or checksum mismatch, never on speed
#   make demo         bench/demo.sh: plain vs preloaded vs mixed (< 2 min)
#
# The micro-programs are built into build/bench/.  The root Makefile defines
# LIB := build/libfastloop.so; bench and demo depend on it.

BENCH_DIR    := build/bench
BENCH_CFLAGS := -O2 -Wall -Wextra -Werror -std=gnu11
BENCH_COMMON := bench/micro/xfer_common.c bench/micro/xfer.h
BENCH_PROGS  := $(BENCH_DIR)/xfer_tcp $(BENCH_DIR)/xfer_ipc $(BENCH_DIR)/crr \
                $(BENCH_DIR)/conns

.PHONY: bench bench-quick bench-smoke bench-progs demo demo-deps

bench-progs: $(BENCH_PROGS)

$(BENCH_DIR):
	mkdir -p $@

$(BENCH_DIR)/xfer_tcp: bench/micro/xfer_tcp.c $(BENCH_COMMON) | $(BENCH_DIR)
	$(CC) $(BENCH_CFLAGS) -o $@ bench/micro/xfer_tcp.c bench/micro/xfer_common.c

$(BENCH_DIR)/xfer_ipc: bench/micro/xfer_ipc.c bench/micro/ring.c bench/micro/ring.h $(BENCH_COMMON) | $(BENCH_DIR)
	$(CC) $(BENCH_CFLAGS) -o $@ bench/micro/xfer_ipc.c bench/micro/ring.c bench/micro/xfer_common.c

$(BENCH_DIR)/crr: bench/micro/crr.c | $(BENCH_DIR)
	$(CC) $(BENCH_CFLAGS) -o $@ bench/micro/crr.c

$(BENCH_DIR)/conns: bench/micro/conns.c $(BENCH_COMMON) | $(BENCH_DIR)
	$(CC) $(BENCH_CFLAGS) -pthread -o $@ bench/micro/conns.c bench/micro/xfer_common.c

bench: $(LIB) $(BENCH_PROGS)
	bench/run.sh --full

bench-quick: $(LIB) $(BENCH_PROGS)
	bench/run.sh --quick

# The smoke run works with or without the library (fastloop rows are then
# skipped with a note), so it depends only on the micro-programs.
bench-smoke: $(BENCH_PROGS)
	bench/run.sh --smoke

# The compiler first (a fresh machine may lack it), then the build.
demo-deps:
	@scripts/need gcc make iperf3 sockperf

demo: demo-deps $(LIB) $(BENCH_PROGS)
	bench/demo.sh
