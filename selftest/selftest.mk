# selftest.mk — `make check`: Check unit suites, integration programs run
# under LD_PRELOAD, interop scripts with unmodified tools, and the bench
# harness smoke run.  Included by the top-level Makefile.

CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell pkg-config --libs check 2>/dev/null)
UNIT_SRC     := $(wildcard selftest/unit/*.c)
UNIT_BIN     := $(BUILD)/selftest/unit_runner
INTEG_SRC    := $(wildcard selftest/integ/*.c)
INTEG_BIN    := $(INTEG_SRC:selftest/integ/%.c=$(BUILD)/selftest/integ/%)
TEST_CFLAGS  := -std=gnu11 -O1 -g -Wall -Wextra $(WERROR) -D_GNU_SOURCE $(SAN)

.PHONY: deps netperf check-unit check-integ check-interop check-nm check-install

# What the tests need, installed when root (scripts/need says what is missing otherwise).
deps:
	@scripts/need pkg-config gcc make /usr/include/check.h:check /usr/include/uthash.h:uthash-dev \
	    /usr/include/subunit/child.h:libsubunit-dev python3 iperf3 iperf sockperf \
	    redis-server redis-benchmark:redis-tools nginx:nginx-light wrk curl ss:iproute2 sha256sum:coreutils \
	    autoconf automake

$(UNIT_BIN): $(UNIT_SRC) $(SHIMLIB) selftest/unit/suites.h
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) $(CHECK_CFLAGS) -Ishim -o $@ $(UNIT_SRC) $(SHIMLIB) $(CHECK_LIBS) -ldl -lpthread

$(BUILD)/selftest/integ/%: selftest/integ/%.c selftest/integ/tlib.h
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -o $@ $< -lpthread

check-nm: $(LIB)
	@selftest/check-exports.sh $(LIB)

# install into a scratch DESTDIR; the wrapper must find the library there
# (FASTLOOP_LIB, as PREFIX is not where DESTDIR put it) and preload it
check-install: $(LIB)
	@rm -rf $(BUILD)/inst
	@$(MAKE) --no-print-directory install PREFIX=/usr/local DESTDIR=$(CURDIR)/$(BUILD)/inst >/dev/null
	@for f in lib/libfastloop.so bin/fastloop share/doc/fastloop/README.md share/doc/fastloop/design.md; do \
	    test -f $(BUILD)/inst/usr/local/$$f || { echo "check-install: $$f missing"; exit 1; }; done
	@grep -q '^LIBDEFAULT=/usr/local/lib/libfastloop.so$$' $(BUILD)/inst/usr/local/bin/fastloop || \
	    { echo "check-install: wrapper does not point at PREFIX"; exit 1; }
	@out=$$(FASTLOOP_LIB=$(CURDIR)/$(BUILD)/inst/usr/local/lib/libfastloop.so \
	    $(BUILD)/inst/usr/local/bin/fastloop run -- sh -c 'echo "$$LD_PRELOAD"'); \
	    case $$out in *inst/usr/local/lib/libfastloop.so*) echo "check-install: ok" ;; \
	    *) echo "check-install: wrapper did not preload the library ($$out)"; exit 1 ;; esac
	@rm -rf $(BUILD)/inst

check-unit: $(UNIT_BIN)
	CK_DEFAULT_TIMEOUT=60 CK_TAP_LOG_FILE_NAME=$(BUILD)/selftest/unit.tap $(UNIT_BIN)

check-integ: $(LIB) $(INTEG_BIN)
	BUILD=$(BUILD) SAN_RT=$(SAN_RT) selftest/integ/run.sh
	@BUILD=$(BUILD) SAN_RT=$(SAN_RT) selftest/integ/registry.sh; r=$$?; [ $$r = 0 ] || [ $$r = 77 ]

# netperf is not in Debian main: build it, unmodified, from the upstream
# tarball (../shared/third_party/ or NETPERF_TARBALL) into
# $(BUILD)/third_party/netperf/bin for selftest/interop/netperf.sh and the
# bench.  No tarball (exit 77) is not an error: netperf.sh then skips.
netperf:
	@BUILD=$(BUILD) scripts/build-netperf; r=$$?; [ $$r = 0 ] || [ $$r = 77 ]

# every program on both transports, with the default (the switch in
# accept: every connection fast); the switch after 8 calls is run by the
# integration matrix (setups */lazy)
check-interop: $(LIB) netperf
	LIB=$(CURDIR)/$(LIB) FASTLOOP_TRANSPORT=shm selftest/interop/run-all.sh
	LIB=$(CURDIR)/$(LIB) FASTLOOP_TRANSPORT=uds selftest/interop/run-all.sh

check: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory check-nm check-install check-unit check-integ check-interop check-examples
	@$(MAKE) --no-print-directory bench-smoke
