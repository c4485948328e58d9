# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# libFuzzer harnesses (tests/fuzz/README.md), included by the top Makefile.
# The user objects are built again with clang, coverage hooks and ASan +
# UBSan under $(OUT)/fuzz; main.c is left out, each harness has its own
# entry point.
#
#   make fuzz [FUZZ_SECONDS=N] [FUZZ=name ...]   each harness N s (60)
#   make fuzz-smoke                               each harness a few seconds
#                                                 on the committed corpus
#
# New inputs go to $(OUT)/fuzz/corpus/<name> (not committed); a crash is
# written to $(OUT)/fuzz/crash-<name>-* and the run stops.

FUZZ_CC      ?= clang
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS  := -g -O1 -fno-omit-frame-pointer $(FUZZ_SAN) \
		-Wall -Wextra -Werror -std=gnu11 -Iinclude -Iuser -I$(OUT)/skel \
		$(shell $(PKG) --cflags libbpf 2>/dev/null) \
		$(shell $(PKG) --cflags libcyaml 2>/dev/null)
FUZZ_NAMES   := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ         ?= $(FUZZ_NAMES)
FUZZ_BINS    := $(patsubst %,$(OUT)/fuzz/fuzz_%,$(FUZZ_NAMES))
FUZZ_OBJS    := $(patsubst $(OUT)/obj/%,$(OUT)/fuzz/obj/%,$(LIB_OBJS))
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 3
# Known findings in the libraries we call are suppressed in lsan.supp, each
# with its reason there.
FUZZ_ENV     := UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		LSAN_OPTIONS=suppressions=$(CURDIR)/tests/fuzz/lsan.supp:print_suppressions=0

$(OUT)/fuzz/obj/%.o: user/%.c $(HDRS) $(SKELS)
	@mkdir -p $(dir $@)
	$(call msg,FUZZ-CC,$@)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(OUT)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_OBJS)
	$(call msg,FUZZ-LD,$@)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -D_GNU_SOURCE -fsanitize=fuzzer $< $(FUZZ_OBJS) \
		$(LDLIBS) -o $@

# libFuzzer ships in clang's runtime package, named by clang's major version
# (libclang-rt-14-dev on Debian 12): asked once clang itself is in.
fuzz-deps: deps
	$(Q)p=libclang-rt-$$($(FUZZ_CC) -dumpversion | cut -d. -f1)-dev; \
	dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || { \
		echo "  DEPS     installing: $$p"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends $$p >/dev/null; }

$(FUZZ_BINS): | fuzz-deps

fuzz-build: $(FUZZ_BINS)

# One harness: $(1) name, $(2) seconds, $(3) the corpus folder new inputs
# go to. -close_fd_mask=2: the harnesses' own stderr (refusals printed for
# operators) is noise here; libFuzzer and the sanitizers still report.
fuzz_run = mkdir -p $(3) && \
	$(FUZZ_ENV) $(OUT)/fuzz/fuzz_$(1) $(3) tests/fuzz/corpus/$(1) \
		-max_total_time=$(2) -timeout=10 -rss_limit_mb=2048 \
		-close_fd_mask=2 -print_final_stats=1 \
		-artifact_prefix=$(OUT)/fuzz/crash-$(1)- \
		> $(OUT)/fuzz/$(1).log 2>&1 || \
	{ tail -60 $(OUT)/fuzz/$(1).log; echo "fuzz: $(1) failed (input in $(OUT)/fuzz/crash-$(1)-*)"; exit 1; }

fuzz: $(FUZZ_BINS)
	$(Q)for n in $(FUZZ); do \
		echo "  FUZZ     $$n $(FUZZ_SECONDS) s"; \
		$(call fuzz_run,$$n,$(FUZZ_SECONDS),$(OUT)/fuzz/corpus/$$n); \
		grep -E '^#[0-9]+.*(DONE|cov:)' $(OUT)/fuzz/$$n.log | tail -1; \
	done

fuzz-smoke: $(FUZZ_BINS)
	$(Q)for n in $(FUZZ_NAMES); do \
		echo "  FUZZ     $$n $(FUZZ_SMOKE_SECONDS) s"; \
		rm -rf $(OUT)/fuzz/smoke-$$n; \
		$(call fuzz_run,$$n,$(FUZZ_SMOKE_SECONDS),$(OUT)/fuzz/smoke-$$n); \
		rm -rf $(OUT)/fuzz/smoke-$$n; \
	done

.PHONY: fuzz fuzz-build fuzz-deps fuzz-smoke

# `make fuzz-cov`: how much of its target each harness's corpus (committed
# and found) reaches: the harnesses built again with clang's source-based
# coverage (no sanitizers), run once over their corpus, and llvm-cov's line
# and branch figures for the files each one is for (tests/fuzz/cov.sh).
COV_CFLAGS := $(filter-out $(FUZZ_SAN),$(FUZZ_CFLAGS)) \
	      -fprofile-instr-generate -fcoverage-mapping
COV_OBJS   := $(patsubst $(OUT)/obj/%,$(OUT)/fuzz-cov/obj/%,$(LIB_OBJS))
# kept between runs (made by one pattern rule for another, they would be
# treated as intermediate and deleted)
.SECONDARY: $(FUZZ_OBJS) $(COV_OBJS)

$(OUT)/fuzz-cov/obj/%.o: user/%.c $(HDRS) $(SKELS)
	@mkdir -p $(dir $@)
	$(call msg,COV-CC,$@)
	$(Q)$(FUZZ_CC) $(COV_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(OUT)/fuzz-cov/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(COV_OBJS)
	$(call msg,COV-LD,$@)
	$(Q)$(FUZZ_CC) $(COV_CFLAGS) -D_GNU_SOURCE -fsanitize=fuzzer $< $(COV_OBJS) \
		$(LDLIBS) -o $@

fuzz-cov: $(patsubst %,$(OUT)/fuzz-cov/fuzz_%,$(FUZZ_NAMES))
	$(Q)OUT=$(OUT) tests/fuzz/cov.sh $(FUZZ)

.PHONY: fuzz-cov
