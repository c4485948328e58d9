#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# `make demo`: start sidelane on a demo cgroup, run a client/server pair in it,
# show the accounting map while the connection is open, then measure plain
# loopback against the fast path (`sidelane bench --quick`) and clean up.
set -euo pipefail
cd "$(dirname "$0")/.."
SL=./build/sidelane
[ "$(id -u)" = 0 ] || { echo "demo: run as root (loads BPF programs)" >&2; exit 1; }

cg2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
[ -n "$cg2" ] || { echo "demo: no cgroup v2 mount in /proc/mounts" >&2; exit 1; }
name=sidelane-demo-$$
cg=$cg2/$name
pins=/sys/fs/bpf/$name
sl_pid=

cleanup() {
	[ -n "$sl_pid" ] && kill "$sl_pid" 2>/dev/null && wait "$sl_pid" 2>/dev/null
	[ -d "$pins" ] && $SL detach --pin-root "$pins" >/dev/null 2>&1
	[ -d "$cg" ] && rmdir "$cg" 2>/dev/null
	return 0
}
trap cleanup EXIT INT TERM

mkdir "$cg"
echo "== sidelane run --cgroup $cg --pin-root $pins"
$SL run --cgroup "$cg" --pin-root "$pins" &
sl_pid=$!
for _ in $(seq 50); do [ -e "$pins/link_sockops" ] && break; sleep 0.1; done
[ -e "$pins/link_sockops" ] || { echo "demo: sidelane did not attach" >&2; exit 1; }

echo "== a client/server pair inside $name: 1000 request/response round trips"
# The pair joins the cgroup first: a socket belongs to its creator's cgroup.
sh -c 'echo $$ > "$1/cgroup.procs"; exec python3 - "$2"' _ "$cg" "$pins" <<'PY'
import socket, subprocess, sys, threading, time
pins = sys.argv[1]
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen()
def serve():
    c, _ = ls.accept()
    while (b := c.recv(65536)):
        c.sendall(b)
threading.Thread(target=serve, daemon=True).start()
s = socket.socket(); s.connect(ls.getsockname())
t = time.perf_counter()
for _ in range(1000):
    s.sendall(b"x" * 64); s.recv(64)
print(f"   1000 x 64 B round trips in {1e3 * (time.perf_counter() - t):.1f} ms")
print(f"== bpftool map dump pinned {pins}/sl_conns  (connection still open)")
subprocess.run(["bpftool", "map", "dump", "pinned", f"{pins}/sl_conns"], check=True)
PY

echo "== sidelane status --pin-root $pins"
$SL status --pin-root "$pins"

echo "== plain loopback vs fast path (sidelane bench --quick)"
$SL bench --quick
