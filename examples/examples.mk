# examples/examples.mk — included by the root Makefile.
#
#   make examples        build/examples/echo-server and echo-client
#   make check-examples  runs examples/check.sh (part of `make check`): the
#                        echo pair with both ends preloaded (transport=uds)
#                        and with the server only (transport=tcp), and the
#                        example configuration files checked by the tools
#                        that read them (the library, systemd-analyze, nginx)
#
# The examples are plain POSIX programs: their own flags, not the library's
# (-fPIC, -fvisibility=hidden and _GNU_SOURCE are the library's business).

EXAMPLES_DIR    ?= build/examples
EXAMPLES_CFLAGS := -O2 -g -std=c11 -Wall -Wextra $(WERROR)
EXAMPLES_BIN    := $(EXAMPLES_DIR)/echo-server $(EXAMPLES_DIR)/echo-client

.PHONY: examples check-examples

examples: $(EXAMPLES_BIN)

$(EXAMPLES_DIR)/%: examples/%.c
	@mkdir -p $(dir $@)
	$(CC) $(EXAMPLES_CFLAGS) -o $@ $<

check-examples: $(LIB) $(EXAMPLES_BIN)
	@LIB=$(CURDIR)/$(LIB) EXAMPLES_DIR=$(CURDIR)/$(EXAMPLES_DIR) examples/check.sh
