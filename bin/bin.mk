# bin.mk — the programs behind the bin/fastloop wrapper's subcommands:
#   $(BUILD)/fastloop-stat   `fastloop stat` (reads what shim/stat.c publishes)
# Included by the top-level Makefile after bench.mk.

STAT_BIN := $(BUILD)/fastloop-stat

# The reader shares the file format (shim/stat.h) and its checks
# (shim/stat_read.c, also in the unit tests) with the library; it links
# nothing else of the engine.
$(STAT_BIN): bin/fastloop-stat.c $(BUILD)/shim/stat_read.o shim/stat.h shim/flp.h
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) -Ishim -o $@ bin/fastloop-stat.c $(BUILD)/shim/stat_read.o

# Objects and tests that include stat.h are rebuilt when it changes.
$(SHIM_OBJ) $(PRELOAD_OBJ) $(UNIT_BIN): shim/stat.h
