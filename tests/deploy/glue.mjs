// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// deploy/sidelane-k8s, run for real (deploy-check): the cgroup paths it
// derives for the layouts of the two cgroup drivers and of kind, the cases it
// must refuse, and its admin client against a local HTTP server standing in
// for sidelane's admin endpoint. Nothing here needs root or a cluster.
import { execFile, spawnSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const UID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
const SD = UID.replace(/-/g, "_");

// [name, subcommand, /proc/self/cgroup, expected argv of `sidelane run` or
// expected error text]
const CASES = [
	["pod-run, systemd driver", "pod-run", `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${SD}.slice/cri-containerd-abc.scope`,
		`run --cgroup /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${SD}.slice --pin-root /sys/fs/bpf/sidelane-${UID} --config /c`],
	["pod-run, cgroupfs driver", "pod-run", `0::/kubepods/besteffort/pod${UID}/abc`,
		`run --cgroup /kubepods/besteffort/pod${UID} --pin-root /sys/fs/bpf/sidelane-${UID} --config /c`],
	["pod-run --foreign-proxy: the pod's cgroup is the sidecar's too", ["pod-run", "--foreign-proxy"], `0::/kubepods/besteffort/pod${UID}/abc`,
		`run --cgroup /kubepods/besteffort/pod${UID} --sidecar-cgroup /kubepods/besteffort/pod${UID} --pin-root /sys/fs/bpf/sidelane-${UID} --config /c`],
	["pod-run, private cgroup namespace", "pod-run", "0::/", { err: "private cgroup namespace" }],
	["pod-run, parent is not this pod", "pod-run", "0::/kubepods.slice/kubepods-pod1111.slice/x.scope", { err: "is not the cgroup of pod" }],
	["pod-run, cgroup v1 only", "pod-run", "4:memory:/kubepods/pod1", { err: "no cgroup v2 entry" }],
	["node-run, systemd driver", "node-run", `0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${SD}.slice/cri-containerd-abc.scope`,
		"run --cgroup /kubepods.slice --config /c"],
	["node-run, cgroupfs driver", "node-run", `0::/kubepods/burstable/pod${UID}/abc`, "run --cgroup /kubepods --config /c"],
	["node-run, kind node", "node-run", "0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/x.scope",
		"run --cgroup /kubelet.slice/kubelet-kubepods.slice --config /c"],
	["node-run, not under kubepods", "node-run", "0::/system.slice/containerd.service", { err: "no kubepods cgroup" }],
];

export async function checkGlue(script) {
	const results = []; // [ok, text]
	const skipped = [];
	const syntax = spawnSync("bash", ["-n", script], { encoding: "utf8" });
	results.push([syntax.status === 0, `bash -n ${script}${syntax.stderr ? ": " + syntax.stderr.trim() : ""}`]);
	const sc = spawnSync("shellcheck", ["--version"], { encoding: "utf8" });
	if (sc.error) skipped.push("shellcheck: not installed (Debian package shellcheck)");
	else {
		const r = spawnSync("shellcheck", [script], { encoding: "utf8" });
		results.push([r.status === 0, `shellcheck ${script}${r.status ? ":\n" + r.stdout.trim() : ""}`]);
	}
	const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sl-glue-"));
	try {
		for (const [name, sub, cg, want] of CASES) {
			const f = path.join(tmp, "cgroup");
			fs.writeFileSync(f, cg + "\n");
			const env = { ...process.env, SIDELANE_K8S_PROC_CGROUP: f, SIDELANE_K8S_EXEC: "echo", POD_UID: UID };
			const r = spawnSync(script, [...[sub].flat(), "--config", "/c"], { encoding: "utf8", env });
			const ok = typeof want === "string" ? r.status === 0 && r.stdout.trim() === want : r.status === 1 && r.stderr.includes(want.err);
			results.push([ok, `sidelane-k8s ${name}` + (ok ? "" : `: got exit ${r.status}, ${JSON.stringify(r.stdout.trim() || r.stderr.trim())}`)]);
		}
		results.push(...(await adminCases(script)));
	} finally {
		fs.rmSync(tmp, { recursive: true, force: true });
	}
	return { results, skipped };
}

// The admin client against a stand-in endpoint: 2xx is success, anything
// else (and a refused connection) is failure, the method goes through.
async function adminCases(script) {
	const seen = [];
	const srv = http.createServer((q, r) => {
		seen.push(`${q.method} ${q.url}`);
		const code = { "GET /ready": 200, "GET /healthz": 503, "POST /drain": 202 }[`${q.method} ${q.url}`] ?? 404;
		r.writeHead(code, { "content-type": "text/plain" });
		r.end(`${code}\n`);
	});
	await new Promise((ok) => srv.listen(0, "127.0.0.1", ok));
	const addr = `127.0.0.1:${srv.address().port}`;
	const call = async (args, a = addr) => {
		try {
			const r = await run(script, ["admin", ...args], { env: { ...process.env, SIDELANE_ADMIN: a }, timeout: 10000 });
			return [0, r.stdout];
		} catch (e) {
			return [e.code, e.stderr];
		}
	};
	const out = [];
	const expect = async (args, code, what) => {
		const [rc, text] = await call(...args);
		out.push([rc === code, `sidelane-k8s admin ${what}` + (rc === code ? "" : `: exit ${rc}, ${JSON.stringify(text.trim())}`)]);
	};
	try {
		await expect([["GET", "/ready"]], 0, "GET /ready 200 -> exit 0");
		await expect([["GET", "/healthz"]], 1, "GET /healthz 503 -> exit 1");
		await expect([["POST", "/drain"]], 0, "POST /drain 202 -> exit 0");
		const closed = await new Promise((ok) => {
			const s = http.createServer().listen(0, "127.0.0.1", () => {
				const p = s.address().port;
				s.close(() => ok(p));
			});
		});
		await expect([["GET", "/ready"], `127.0.0.1:${closed}`], 1, "connection refused -> exit 1");
	} finally {
		srv.close();
	}
	const methods = seen.join(", ");
	out.push([methods === "GET /ready, GET /healthz, POST /drain", `sidelane-k8s admin sent ${methods}`]);
	return out;
}
