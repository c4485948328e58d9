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
include tests/deploy/deploy.mk

test: deps all unit deploy-check integ

# `make soak [SOAK_MINUTES=N]`: the integration binaries over and over until
# the deadline; stops at the first failure (rare races show up here, not in a
# single `make test`). Bounded in time, loopback only. SIDELANE_TEST_LONG
# adds the long cases (1 GiB spliced uploads and full duplex).
SOAK_MINUTES ?= 10
soak: deps all $(INTEG_BINS)
	$(Q)end=$$(( $$(date +%s) + $(SOAK_MINUTES) * 60 )); n=0; \
	while [ $$(date +%s) -lt $$end ]; do \
		n=$$((n + 1)); \
		for t in $(INTEG_BINS); do \
			SIDELANE_TEST_LONG=1 $$t > $$t.log 2>&1 || { cat $$t.log; \
				echo "soak: $$t failed in round $$n"; exit 1; }; \
		done; \
		echo "  SOAK     round $$n passed"; \
	done; \
	echo "soak: $$n passed, 0 failed"
