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

.PHONY: deps check-unit check-integ check-interop check-nm

# What the tests need, installed when root (scripts/need says what is missing otherwise).
deps:
	@scripts/need pkg-config gcc make /usr/include/check.h:check /usr/include/uthash.h:uthash-dev \
	    /usr/include/subunit/child.h:libsubunit-dev python3 iperf3 iperf sockperf \
	    redis-server redis-benchmark:redis-tools nginx:nginx-light wrk curl ss:iproute2 sha256sum:coreutils

$(UNIT_BIN): $(UNIT_SRC) $(SHIMLIB) selftest/unit/suites.h
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) $(CHECK_CFLAGS) -Ishim -o $@ $(UNIT_SRC) $(SHIMLIB) $(CHECK_LIBS) -ldl -lpthread

$(BUILD)/selftest/integ/%: selftest/integ/%.c selftest/integ/tlib.h
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -o $@ $< -lpthread

check-nm: $(LIB)
	@selftest/check-exports.sh $(LIB)

check-unit: $(UNIT_BIN)
	CK_DEFAULT_TIMEOUT=60 CK_TAP_LOG_FILE_NAME=$(BUILD)/selftest/unit.tap $(UNIT_BIN)

check-integ: $(LIB) $(INTEG_BIN)
	BUILD=$(BUILD) SAN_RT=$(SAN_RT) selftest/integ/run.sh
	@BUILD=$(BUILD) selftest/integ/registry.sh; r=$$?; [ $$r = 0 ] || [ $$r = 77 ]

check-interop: $(LIB)
	LIB=$(CURDIR)/$(LIB) selftest/interop/run-all.sh

check: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory check-nm check-unit check-integ check-interop
	@$(MAKE) --no-print-directory bench-smoke
