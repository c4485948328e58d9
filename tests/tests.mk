# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Test targets, included by the top Makefile: cmocka unit tests for the pure
# user-space parts, then the integration suite that loads the real programs.

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(OUT)/tests/%,$(UNIT_SRCS))

$(OUT)/tests/test_%: tests/unit/test_%.c $(LIB_OBJS) | $(OUT)/tests
	$(call msg,TEST-CC,$@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -lcmocka -o $@

unit: deps $(UNIT_BINS)
	$(Q)for t in $(UNIT_BINS); do echo "  UNIT     $$t"; $$t || exit 1; done

-include tests/integ/integ.mk

test: deps all unit integ
