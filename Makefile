# fastloop — build, test, benchmark.  Plain GNU Make.
#   make            build/libfastloop.so and bin/fastloop
#   make check      unit + integration + interop tests (installs what it needs when root)
#   make demo       A/B of iperf3 and sockperf with and without fastloop
#   make bench      full benchmark (bench-quick: < 3 min)
#   make asan|tsan  sanitizer builds of the library and the tests
#   make install PREFIX=/usr/local DESTDIR=

CC       ?= cc
PREFIX   ?= /usr/local
DESTDIR  ?=
BUILD    ?= build
SAN      ?=
WERROR   ?= -Werror
CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 -Wall -Wextra $(WERROR) -fPIC -fvisibility=hidden \
            -D_GNU_SOURCE $(SAN)
LDLIBS   += -ldl -lpthread

SHIM_SRC    := $(wildcard shim/*.c)
PRELOAD_SRC := $(wildcard preload/*.c)
SHIM_OBJ    := $(SHIM_SRC:%.c=$(BUILD)/%.o)
PRELOAD_OBJ := $(PRELOAD_SRC:%.c=$(BUILD)/%.o)
LIB         := $(BUILD)/libfastloop.so
SHIMLIB     := $(BUILD)/libflpshim.a

.PHONY: all check unit integ interop asan tsan install clean demo bench bench-quick bench-smoke
all: $(LIB) bin/fastloop $(BUILD)/fastloop-stat

$(BUILD)/%.o: %.c shim/flp.h shim/ring.h shim/stat.h preload/hook.h
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) -c $< -o $@

$(SHIMLIB): $(SHIM_OBJ)
	$(AR) rcs $@ $^

$(LIB): $(PRELOAD_OBJ) $(SHIMLIB) preload/fastloop.map
	$(CC) $(CFLAGS) -shared -Wl,--version-script=preload/fastloop.map \
	    -Wl,-z,now -o $@ $(PRELOAD_OBJ) $(SHIMLIB) $(LDLIBS)

include selftest/selftest.mk
-include bench/bench.mk
-include examples/examples.mk
-include bin/bin.mk

# Sanitizer builds of the library and the tests.  The preloaded runtime
# must come first, so the integration runs get it in LD_PRELOAD.
asan:
	$(MAKE) BUILD=build-asan SAN="-fsanitize=address,undefined -fno-omit-frame-pointer" \
	    SAN_RT="$$($(CC) -print-file-name=libasan.so)" check-unit check-integ

# ThreadSanitizer (gcc's runtime: clang 14's cannot map its shadow on this
# kernel's address layout).
tsan:
	TSAN_OPTIONS="suppressions=$(CURDIR)/selftest/tsan.supp $${TSAN_OPTIONS:-}" \
	$(MAKE) BUILD=build-tsan SAN="-fsanitize=thread" \
	    SAN_RT="$$($(CC) -print-file-name=libtsan.so)" FLP_MANY=2000 check-unit check-integ

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/doc/fastloop \
	    $(DESTDIR)$(PREFIX)/libexec/fastloop
	install -m 0755 $(LIB) $(DESTDIR)$(PREFIX)/lib/libfastloop.so
	install -m 0755 $(BUILD)/fastloop-stat $(DESTDIR)$(PREFIX)/libexec/fastloop/fastloop-stat
	sed -e 's|^LIBDEFAULT=.*|LIBDEFAULT=$(PREFIX)/lib/libfastloop.so|' \
	    -e 's|^LIBEXECDEFAULT=.*|LIBEXECDEFAULT=$(PREFIX)/libexec/fastloop|' \
	    bin/fastloop > $(DESTDIR)$(PREFIX)/bin/fastloop
	chmod 0755 $(DESTDIR)$(PREFIX)/bin/fastloop
	install -m 0644 README.md docs/design.md $(DESTDIR)$(PREFIX)/share/doc/fastloop/

clean:
	rm -rf build build-asan build-tsan
