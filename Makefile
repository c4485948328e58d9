# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# sidelane: BPF objects -> skeletons -> one binary, build/sidelane.
# `make V=1` shows the commands; `make SAN=address,undefined` builds with sanitizers.

OUT       := build
CLANG     ?= clang
CC        ?= cc
BPFTOOL   ?= bpftool
PKG       ?= pkg-config
ARCH      := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
PREFIX    ?= /usr/local
DESTDIR   ?=

BPF_SRCS  := $(wildcard bpf/*.bpf.c)
BPF_OBJS  := $(patsubst bpf/%.bpf.c,$(OUT)/bpf/%.bpf.o,$(BPF_SRCS))
SKELS     := $(patsubst bpf/%.bpf.c,$(OUT)/skel/%.skel.h,$(BPF_SRCS))
HDRS      := $(wildcard include/*.h user/*.h user/*/*.h)

# user/main.c and one folder a part: lib, tls, config, loader, proxy, report,
# bench (README, "Layout").
USER_SRCS := $(wildcard user/*.c user/*/*.c)
USER_OBJS := $(patsubst user/%.c,$(OUT)/obj/%.o,$(USER_SRCS))
# Everything but main.c: linked into the unit and integration tests too.
LIB_OBJS  := $(filter-out $(OUT)/obj/main.o,$(USER_OBJS))

BPF_CFLAGS := -g -O2 --target=bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror \
	      -Iinclude -Ivmlinux/$(ARCH) -I$(OUT)
CFLAGS    ?= -g -O2
CFLAGS    += -Wall -Wextra -Werror -std=gnu11 -Iinclude -Iuser -I$(OUT)/skel \
	     $(shell $(PKG) --cflags libbpf 2>/dev/null) \
	     $(shell $(PKG) --cflags libcyaml 2>/dev/null)
# libpsx with pthread_create wrapped: libcap's privilege drop then reaches
# every thread (user/lib/privs.c). -lpsx before -lcap: both define
# psx_load_syscalls (libcap weakly) and the first library loaded wins.
LDLIBS    := $(shell $(PKG) --libs libbpf 2>/dev/null || echo -lbpf) -lelf -lz \
	     -lssl -lcrypto -lm -lcyaml -lyaml -lmicrohttpd \
	     -lpsx -lpthread -Wl,-wrap,pthread_create -lcap
ifneq ($(SAN),)
CFLAGS    += -fsanitize=$(SAN) -fno-omit-frame-pointer
LDFLAGS   += -fsanitize=$(SAN)
endif

ifeq ($(V),1)
Q :=
msg =
else
Q := @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

.DELETE_ON_ERROR:
# Keep the objects and skeletons (make would treat them as intermediate).
.SECONDARY: $(BPF_OBJS) $(SKELS)
.PHONY: all deps vmlinux test unit unit-san test-san integ bench bench-smoke demo soak soak-suites scale clean install check-root

all: $(OUT)/sidelane

$(OUT)/bpf $(OUT)/skel $(OUT)/obj $(OUT)/tests:
	$(Q)mkdir -p $@

# `gen object` (libbpf's static linker) keeps BTF and drops DWARF: the
# skeleton embeds the object, and fastpath's shrinks from 790 to 106 KiB of
# the binary (resident after loading).
$(OUT)/bpf/%.bpf.o: bpf/%.bpf.c $(wildcard bpf/*.bpf.h) $(wildcard include/*.h) | $(OUT)/bpf
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $(@:.o=.tmp.o)
	$(Q)$(BPFTOOL) gen object $@ $(@:.o=.tmp.o)
	$(Q)rm -f $(@:.o=.tmp.o)

$(OUT)/skel/%.skel.h: $(OUT)/bpf/%.bpf.o | $(OUT)/skel
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name $(subst -,_,$*)_bpf > $@

$(OUT)/obj/%.o: user/%.c $(HDRS) $(SKELS) | $(OUT)/obj
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(OUT)/sidelane: $(USER_OBJS)
	$(call msg,BINARY,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# Regenerate the committed vmlinux.h from the running kernel's BTF.
vmlinux:
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > vmlinux/$(ARCH)/vmlinux.h

# Debian packages for build, tests, benchmark and demo; apt-get only when one is missing.
DEB_PKGS := clang llvm libbpf-dev libelf-dev zlib1g-dev libssl-dev libcmocka-dev \
	    libcyaml-dev libmicrohttpd-dev libcap-dev bpftool pkg-config iproute2 make gcc python3 \
	    python3-prometheus-client curl haproxy stunnel4 gnuplot-nox
deps:
	$(Q)missing=$$(for p in $(DEB_PKGS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		echo "  DEPS     installing:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

include tests/tests.mk

bench: deps all
	$(OUT)/sidelane bench $(BENCH_ARGS)

demo: deps all
	./tests/demo.sh

install: all
	install -D -m 0755 $(OUT)/sidelane $(DESTDIR)$(PREFIX)/sbin/sidelane

clean:
	rm -rf $(OUT)
