#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# `make demo`: sidelane with its embedded default config on a demo app cgroup,
# its proxy in a sidecar cgroup of its own. An unmodified curl in the app
# cgroup reaches an HTTP server in a network namespace the demo creates:
# captured and relayed. Then a local blocking client/server pair with the
# accounting map: by default (admission, fastpath.app_sockets: safe) each app
# socket stays on plain TCP unless the app cannot tell, and `conns` and
# `status` say why. Then plain loopback vs the opt-in app<->app redirect
# (`sidelane bench --quick`), and everything is removed again.
set -euo pipefail
cd "$(dirname "$0")/.."
SL=./build/sidelane
[ "$(id -u)" = 0 ] || { echo "demo: run as root (loads BPF programs)" >&2; exit 1; }

cg2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
[ -n "$cg2" ] || { echo "demo: no cgroup v2 mount in /proc/mounts" >&2; exit 1; }
name=sidelane-demo-$$
cg=$cg2/$name
side=$cg2/$name-sidecar
pins=/sys/fs/bpf/$name
ns=sl-demo-$$
veth=sld$(( $$ % 100000 ))
sl_pid=
http_pid=

cleanup() {
	# `wait` reports a killed child's 143; under set -e that would become the
	# demo's exit status.
	[ -n "$sl_pid" ] && kill "$sl_pid" 2>/dev/null && wait "$sl_pid" 2>/dev/null || true
	[ -n "$http_pid" ] && kill "$http_pid" 2>/dev/null && wait "$http_pid" 2>/dev/null || true
	[ -d "$pins" ] && $SL detach --pin-root "$pins" >/dev/null 2>&1
	ip netns del "$ns" 2>/dev/null
	for d in "$cg" "$side"; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
	return 0
}
trap cleanup EXIT INT TERM

# A "remote" server: 198.18.77.2 (benchmarking range) in a namespace of ours.
ip netns add "$ns"
ip link add "${veth}h" type veth peer name "${veth}n" netns "$ns"
ip addr add 198.18.77.1/30 dev "${veth}h" && ip link set "${veth}h" up
ip -n "$ns" addr add 198.18.77.2/30 dev "${veth}n"
ip -n "$ns" link set "${veth}n" up && ip -n "$ns" link set lo up
ip netns exec "$ns" python3 -m http.server 80 --bind 198.18.77.2 >/dev/null 2>&1 &
http_pid=$!
for _ in $(seq 50); do
	ip netns exec "$ns" python3 -c 'import socket; socket.create_connection(("198.18.77.2", 80), 1)' \
		2>/dev/null && break
	sleep 0.1
done

mkdir "$cg" "$side"
echo "== sidelane run --cgroup $cg --sidecar-cgroup $side   (embedded default config)"
$SL run --cgroup "$cg" --sidecar-cgroup "$side" --pin-root "$pins" &
sl_pid=$!
for _ in $(seq 50); do [ -e "$pins/link_getsockopt" ] && break; sleep 0.1; done
[ -e "$pins/link_getsockopt" ] || { echo "demo: sidelane did not attach" >&2; exit 1; }
sleep 0.5

echo "== curl http://198.18.77.2/ from the app's cgroup: captured, relayed by sidelane"
sh -c 'echo $$ > "$1/cgroup.procs"; exec curl -sS -m 5 -o /dev/null -w "   HTTP %{http_code} from %{remote_ip} (the app sees the original peer)\n" http://198.18.77.2/' _ "$cg"

echo "== a client/server pair inside $name: 1000 request/response round trips"
# The pair joins the cgroup first: a socket belongs to its creator's cgroup.
sh -c 'echo $$ > "$1/cgroup.procs"; exec python3 - "$2" "$3"' _ "$cg" "$pins" "$SL" <<'PY'
import socket, subprocess, sys, threading, time
pins, sl = sys.argv[1], sys.argv[2]
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
print(f"== sidelane conns --pin-root {pins}  (each socket with its admission reason)")
subprocess.run([sl, "conns", "--pin-root", pins], check=True)
PY

echo "== sidelane status --pin-root $pins"
$SL status --pin-root "$pins"
echo "== sidelane policy list"
$SL policy list --pin-root "$pins"

echo "== plain loopback vs the opt-in app<->app redirect (sidelane bench --quick)"
$SL bench --quick
