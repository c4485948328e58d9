#!/bin/sh
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Line and branch coverage each harness's corpus reaches in the files it is
# for (make fuzz-cov). Usage: cov.sh name...
set -e
OUT=${OUT:-build}
target() {
	case $1 in
	config|policy) echo user/config/doc.c user/config/values.c user/config/config.c ;;
	policy_args) echo user/cli/policy.c ;;
	admin) echo user/report/admin.c ;;
	cert) echo user/tls/tls.c ;;
	spiffe) echo user/tls/spiffe.c ;;
	json) echo user/lib/json.c ;;
	addr) echo user/lib/addr.c ;;
	esac
}
# The functions a harness is for, where its files hold much else (the
# admin endpoint's metrics need pins, tls.c is mostly the TLS context).
funcs() {
	case $1 in
	admin) echo 'admin.c:on_request|admin.c:serve_drain|admin.c:serve_healthz' ;;
	cert) echo 'cert_identity' ;;
	policy_args) echo 'policy_rule_parse' ;;
	esac
}
for n in "$@"; do
	d=$OUT/fuzz-cov/$n
	rm -rf "$d" && mkdir -p "$d"
	dirs=tests/fuzz/corpus/$n
	[ -d "$OUT/fuzz/corpus/$n" ] && dirs="$dirs $OUT/fuzz/corpus/$n"
	# every input once; the harness's own output is not the point here
	LLVM_PROFILE_FILE="$d/%p.profraw" "$OUT/fuzz-cov/fuzz_$n" -runs=0 \
		-close_fd_mask=3 $dirs > "$d/run.log" 2>&1 || true
	llvm-profdata merge -sparse "$d"/*.profraw -o "$d/all.profdata"
	inputs=$(find $dirs -type f -exec cat {} + | wc -c)
	files=$(find $dirs -type f | wc -l)
	llvm-cov report "$OUT/fuzz-cov/fuzz_$n" -instr-profile="$d/all.profdata" \
		$(target "$n") 2>/dev/null | awk -v n="$n" -v f="$files" -v b="$inputs" '
		/^TOTAL/ { printf "%-12s %5d inputs (%d B): lines %s, branches %s\n",
				  n, f, b, $10, $13 }'
	[ -n "$(funcs "$n")" ] || continue
	llvm-cov report -show-functions "$OUT/fuzz-cov/fuzz_$n" \
		-instr-profile="$d/all.profdata" $(target "$n") 2>/dev/null |
		grep -E "^($(funcs "$n")) " | awk '{ printf "%14s %s: lines %s, branches %s\n", "", $1, $7, $10 }'
done
