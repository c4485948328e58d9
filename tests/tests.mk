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
include tests/fuzz/fuzz.mk

# `sidelane bench` still runs, and every mode carries its traffic (it exits
# 3 when one does not): one short workload of each suite. No figure is
# judged here; `make bench` measures.
BENCH_SMOKE := "fastpath --workloads rr_64" "sidecar --workloads rr_64" \
	       "tls --workloads conn_64"
bench-smoke: all | $(OUT)/tests
	$(Q)for s in $(BENCH_SMOKE); do \
		echo "  BENCH    --suite $$s --quick"; \
		$(OUT)/sidelane bench --suite $$s --quick \
			> $(OUT)/tests/bench-smoke.log 2>&1 || \
			{ cat $(OUT)/tests/bench-smoke.log; exit 1; }; \
	done

test: deps all unit unit-san fuzz-smoke deploy-check integ bench-smoke

# The same binary and tests built with ASan and UBSan in $(OUT)/san (the BPF
# side is unchanged): `make test-san` runs the unit and integration suites,
# `make unit-san` the unit tests only (make test runs those). Every process,
# the sidelane daemons the tests start included, writes its reports to
# $(OUT)/san/reports/; any report fails the run. UBSan halts on its first
# finding, LeakSanitizer reports at exit (suppressions in tests/san.supp,
# each with its reason).
SAN_FLAGS   := address,undefined
SAN_REPORTS := $(CURDIR)/$(OUT)/san/reports
SAN_ENV     := UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$(SAN_REPORTS)/ubsan \
	       ASAN_OPTIONS=detect_leaks=1:log_path=$(SAN_REPORTS)/asan \
	       LSAN_OPTIONS=suppressions=$(CURDIR)/tests/san.supp:print_suppressions=0
# $(1): the targets to run in the sanitizer build.
san_run = rm -rf $(SAN_REPORTS) && mkdir -p -m 1777 $(SAN_REPORTS) && \
	$(SAN_ENV) $(MAKE) --no-print-directory OUT=$(OUT)/san SAN=$(SAN_FLAGS) $(1); \
	rc=$$?; reports=$$(ls $(SAN_REPORTS)); \
	if [ -n "$$reports" ]; then \
		for r in $$reports; do echo "== $$r"; head -60 $(SAN_REPORTS)/$$r; done; \
		echo "san: $$(echo $$reports | wc -w) sanitizer report(s) in $(SAN_REPORTS)"; exit 1; \
	fi; \
	[ $$rc = 0 ] && echo "san: $(1) passed, no sanitizer report"
unit-san: deps
	$(Q)$(call san_run,unit)
test-san: deps
	$(Q)$(call san_run,unit integ)

# `make scale [SCALE_CONNS=N]`: N (10000) connections at once through the
# sidecar, every byte checked (make test runs the same with 2000).
SCALE_CONNS ?= 10000
scale: deps all $(OUT)/tests/integ_scale
	$(Q)SIDELANE_SCALE_CONNS=$(SCALE_CONNS) SIDELANE_CHURN=0 $(OUT)/tests/integ_scale

# `make soak [SOAK_MINUTES=N]`: N (60) minutes of mixed traffic through the
# sidecar with faults injected at random (tests/integ/soak.c: pins removed,
# kill -9 and restart, SIGHUP bursts, policy edits, the log read-only or
# full, slowloris, config reloads, maps full, hostile upstreams), every byte
# checked, then maps, descriptors and memory; then SOAK_CHURN short
# connections. make test
# runs the same soak for 20 s. `make soak-suites` runs the integration
# binaries over and over until the deadline and stops at the first failure
# (rare races show up there, not in a single `make test`); SIDELANE_TEST_LONG
# adds the long cases (1 GiB spliced uploads and full duplex). Loopback only.
SOAK_MINUTES ?= 60
SOAK_CHURN ?= 1000000
soak: deps all $(OUT)/tests/integ_soak $(OUT)/tests/integ_scale
	$(Q)echo "  SOAK     $(SOAK_MINUTES) min of traffic with faults injected"; \
	SIDELANE_SOAK_SECONDS=$$(( $(SOAK_MINUTES) * 60 )) SIDELANE=$(OUT)/sidelane \
		$(OUT)/tests/integ_soak > $(OUT)/tests/integ_soak.log 2>&1; rc=$$?; \
	grep -E '^(ok|not ok|# soak)' $(OUT)/tests/integ_soak.log; [ $$rc = 0 ] || \
		{ tail -40 $(OUT)/tests/integ_soak.log; echo "soak: failed"; exit 1; }
	$(Q)echo "  SOAK     churn: $(SOAK_CHURN) short connections through the sidecar"; \
	SIDELANE_SCALE_CONNS=100 SIDELANE_CHURN=$(SOAK_CHURN) \
		$(OUT)/tests/integ_scale > $(OUT)/tests/integ_scale.log 2>&1 || \
		{ cat $(OUT)/tests/integ_scale.log; echo "soak: churn failed"; exit 1; }; \
	grep '^# churn' $(OUT)/tests/integ_scale.log

soak-suites: deps all $(INTEG_BINS)
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
