# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Integration tests (tests/integ), included by tests/tests.mk. Each
# tests/integ/<name>.c becomes build/tests/integ_<name>, linked with the
# harness (tests/integ/harness/), the user objects ($(LIB_OBJS)) and $(LDLIBS).
# `make integ` runs them as root against the real build/sidelane; output is
# TAP-like, each binary ends with "N passed, N failed". Conformance findings
# go to build/tests/conformance.md, sidelane logs to build/tests/logs/.

INTEG_SRCS := $(wildcard tests/integ/*.c)
INTEG_BINS := $(patsubst tests/integ/%.c,$(OUT)/tests/integ_%,$(INTEG_SRCS))
# The harness, by concern: report, env, maps, net, pki (tests/integ/harness/).
HARNESS_SRCS := $(wildcard tests/integ/harness/*.c)
INTEG_HARNESS := $(patsubst tests/integ/harness/%.c,$(OUT)/tests/harness/%.o,$(HARNESS_SRCS))
HARNESS_HDRS := tests/integ/harness.h $(wildcard tests/integ/harness/*.h)
INTEG_CFLAGS := -Itests/integ -pthread
# Keep the harness objects: made by one pattern rule for another, make would
# treat them as intermediate and delete them after each link.
.SECONDARY: $(INTEG_HARNESS)

$(OUT)/tests/harness/%.o: tests/integ/harness/%.c $(HARNESS_HDRS) $(HDRS) | $(OUT)/tests
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) $(INTEG_CFLAGS) -c $< -o $@

$(OUT)/tests/integ_%: tests/integ/%.c $(INTEG_HARNESS) $(LIB_OBJS) $(HARNESS_HDRS) $(HDRS) | $(OUT)/tests
	$(call msg,BINARY,$@)
	$(Q)$(CC) $(CFLAGS) $(INTEG_CFLAGS) $(LDFLAGS) $< $(INTEG_HARNESS) \
		$(LIB_OBJS) $(LDLIBS) -o $@

# Every binary runs even after a failure; the target fails if any did. The
# last line sums the binaries' own "N passed, N failed" lines.
integ: $(OUT)/sidelane $(INTEG_BINS)
	$(Q)failed=; for t in $(INTEG_BINS); do \
		echo "# $$t"; SIDELANE=$(OUT)/sidelane $$t > $$t.log 2>&1; rc=$$?; \
		cat $$t.log; \
		[ $$rc = 0 ] || failed="$$failed $$t"; \
	done; \
	[ -z "$$failed" ] || echo "integ: these failed:$$failed"; \
	cat $(addsuffix .log,$(INTEG_BINS)) | awk '/^[0-9]+ passed, [0-9]+ failed/ \
		{ p += $$1; f += $$3 } END { printf "integ: %d passed, %d failed\n", p, f }'; \
	[ -z "$$failed" ]
