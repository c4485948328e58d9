// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Kubernetes manifests for deploy-check (tests/deploy/check.mjs): read as
// kubectl reads them, validated against the Kubernetes API schemas in two
// passes, then cross-checked with sidelane itself.
//
// - YAML 1.1 (what sigs.k8s.io/yaml, hence kubectl, speaks: 0400 is octal,
//   yes/no are booleans), duplicate keys refused.
// - Structure, pinned to Kubernetes 1.29, the oldest release these manifests
//   support (native sidecars are on by default from 1.29): every document is
//   type-checked by the TypeScript compiler against kubernetes-types@1.29.0,
//   which is generated from the 1.29 OpenAPI spec. Unknown or misspelt fields
//   (the excess-property check), wrong types, missing required fields and a
//   field newer than 1.29 are errors, each named by its path.
// - Values, against the OpenAPI v3 JSON schemas of Kubernetes 1.33.0
//   (kubernetes-models@4.5.1, compiled ajv validators): enum values, formats
//   such as int-or-string, required fields and types again.
// - sidelane: the ConfigMap's sidelane.yaml through the product's own parser
//   (`sidelane config check FILE --json`), then the manifest and that config
//   must agree (mounts, probes, TLS files, ports, grace period, memory).
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { checkEnvoy } from "./envoy.mjs";

// kind -> [kubernetes-types module and type (1.29), kubernetes-models module
// and class (1.33)]. A kind not listed is an error, not a silent pass.
const KINDS = {
	"v1/ConfigMap": ["core/v1", "ConfigMap", "v1/ConfigMap"],
	"v1/Namespace": ["core/v1", "Namespace", "v1/Namespace"],
	"v1/Pod": ["core/v1", "Pod", "v1/Pod"],
	"v1/Secret": ["core/v1", "Secret", "v1/Secret"],
	"v1/Service": ["core/v1", "Service", "v1/Service"],
	"v1/ServiceAccount": ["core/v1", "ServiceAccount", "v1/ServiceAccount"],
	"apps/v1/DaemonSet": ["apps/v1", "DaemonSet", "apps/v1/DaemonSet"],
	"apps/v1/Deployment": ["apps/v1", "Deployment", "apps/v1/Deployment"],
	"apps/v1/StatefulSet": ["apps/v1", "StatefulSet", "apps/v1/StatefulSet"],
};
export const K8S_STRUCTURE = "1.29";
export const K8S_VALUES = "1.33";

// The memory a sidelane container needs besides its proxy buffers, for the
// budget check. BPF maps: sized from limits.max_conns (`sidelane status`,
// 2026-12-06, 2 CPUs): 0.7 MiB fixed (2.8 MiB at 128 CPUs) and about 1660 B
// a connection (7.0 MiB at the default 4096, 104.1 MiB at 65536); the kernel
// charges them to the memory cgroup of the process that created them, i.e.
// this container. Process: binary, libraries and OpenSSL contexts. TLS: per
// connection, OpenSSL's SSL object and buffers.
const MIB = 1024 * 1024;
const BUDGET = { mapsFixed: 3 * MIB, mapsPerConn: 1664, process: 16 * MIB, tlsPerConn: 64 * 1024 };
// From the app's exit to SIGKILL, sidelane needs its drain time plus this.
const EXIT_MARGIN_MS = 2000;
const DEFAULT_CONFIG = "/etc/sidelane/sidelane.yaml";
const DEFAULT_ADMIN = "127.0.0.1:15000";

export class Problem {
	constructor(file, line, where, msg) {
		Object.assign(this, { file, line, where, msg });
	}
	toString() {
		return `${this.file}:${this.line}: ${this.where ? this.where + ": " : ""}${this.msg}`;
	}
}

// "spec.template.spec.containers[0].name" from ["spec", ..., 0, "name"]
export function pathStr(p) {
	let s = "";
	for (const k of p)
		s += typeof k === "number" ? `[${k}]` : /^[A-Za-z_][\w-]*$/.test(k) ? (s ? "." : "") + k : `[${JSON.stringify(k)}]`;
	return s;
}

export class Manifests {
	constructor(ctx) {
		this.ctx = ctx; // { require, nodeDir, binary, repo }
		this.docs = []; // { file, doc (yaml Document), obj, lc, index, name }
		this.problems = [];
		this.parseConfig = configParser(this, ctx.binary);
	}

	problem(d, p, msg) {
		const pr = new Problem(d.file, lineOf(d, p), `${d.name}${p.length ? " " + pathStr(p) : ""}`, msg);
		pr.doc = d;
		this.problems.push(pr);
	}

	// Parse one file (text given, so fixtures can pass an edited one).
	load(file, text) {
		const YAML = this.ctx.require("yaml");
		const lc = new YAML.LineCounter();
		const docs = YAML.parseAllDocuments(text, { version: "1.1", uniqueKeys: true, lineCounter: lc, prettyErrors: false });
		let index = 0;
		for (const doc of docs) {
			index++;
			for (const e of [...doc.errors, ...doc.warnings]) {
				const line = e.linePos?.[0]?.line ?? lc.linePos(e.pos[0]).line;
				this.problems.push(new Problem(file, line, `document ${index}`, `YAML: ${e.message.split("\n")[0]}`));
			}
			if (doc.errors.length) continue;
			const obj = doc.toJS({ maxAliasCount: 0 });
			if (obj === null || obj === undefined) continue; // empty document
			const name = typeof obj === "object" ? `${obj.kind ?? "?"}/${obj.metadata?.name ?? "?"}` : `document ${index}`;
			this.docs.push({ m: this, file, doc, obj, lc, index, name });
		}
	}

	check() {
		return Manifests.checkAll([this])[0];
	}

	// Several sets at once: one TypeScript program for all of them is most
	// of the time saved (the fixtures are 20 sets).
	static checkAll(sets) {
		for (const m of sets) for (const d of m.docs) m.basic(d);
		const typed = sets.flatMap((m) => m.docs.filter((d) => d.kindKey));
		if (sets.length) sets[0].structure(typed);
		for (const d of typed) d.m.values(d);
		// The cross-checks assume a well-formed object: schema errors first.
		for (const d of typed) {
			if (d.m.problems.some((p) => p.doc === d)) continue;
			try {
				d.m.semantics(d);
			} catch (e) {
				d.m.problem(d, [], `cross-check crashed (a bug in tests/deploy/k8s.mjs): ${e.stack}`);
			}
		}
		return sets.map((m) => m.problems);
	}

	basic(d) {
		const o = d.obj;
		if (typeof o !== "object" || Array.isArray(o)) return this.problem(d, [], "a manifest must be a mapping");
		const key = `${o.apiVersion}/${o.kind}`;
		if (!KINDS[key])
			return this.problem(d, ["kind"], `no schema for ${key} in this check (add it to KINDS in tests/deploy/k8s.mjs)`);
		d.kindKey = key;
		// The API server requires a name; the schemas do not say so.
		if (typeof o.metadata?.name !== "string" || !o.metadata.name)
			this.problem(d, ["metadata"], "metadata.name is required");
	}

	// Pass 1: TypeScript against kubernetes-types (Kubernetes 1.29).
	structure(docs) {
		if (!docs.length) return;
		const ts = this.ctx.require("typescript");
		const file = path.join(this.ctx.nodeDir, "__deploy_check__", "manifests.ts");
		const lines = ['import type * as core from "kubernetes-types/core/v1";', 'import type * as apps from "kubernetes-types/apps/v1";'];
		const where = []; // generated line -> [doc, path]
		docs.forEach((d, i) => {
			const [mod, type] = KINDS[d.kindKey];
			where[lines.length] = [d, []];
			lines.push(`export const d${i}: ${mod.startsWith("apps") ? "apps" : "core"}.${type} =`);
			emitTs(d.obj, [], 0, lines, where, d);
			lines[lines.length - 1] += ";";
		});
		const src = lines.join("\n") + "\n";
		const options = {
			strict: true, noEmit: true, target: ts.ScriptTarget.ES2020, module: ts.ModuleKind.CommonJS,
			moduleResolution: ts.ModuleResolutionKind.Node10, types: [], lib: ["lib.es5.d.ts"],
			skipLibCheck: true, noErrorTruncation: true,
		};
		const host = ts.createCompilerHost(options);
		const [gsf, fe, rf] = [host.getSourceFile.bind(host), host.fileExists.bind(host), host.readFile.bind(host)];
		host.getSourceFile = (f, l) => (f === file ? ts.createSourceFile(f, src, l) : gsf(f, l));
		host.fileExists = (f) => f === file || fe(f);
		host.readFile = (f) => (f === file ? src : rf(f));
		const program = ts.createProgram([file], options, host);
		for (const diag of ts.getPreEmitDiagnostics(program)) {
			const text = ts.flattenDiagnosticMessageText(diag.messageText, " ").replace(/'"([^"']+)"'/g, "'$1'");
			if (diag.file?.fileName !== file) {
				this.problems.push(new Problem("(deploy-check)", 0, "", `TypeScript setup: ${text}`));
				continue;
			}
			const line = diag.file.getLineAndCharacterOfPosition(diag.start).line;
			let w;
			for (let l = line; l >= 0 && !(w = where[l]); l--);
			const [d, p] = w;
			d.m.problem(d, p, `Kubernetes ${K8S_STRUCTURE}: ${text}`);
		}
	}

	// Pass 2: the OpenAPI v3 JSON schema (Kubernetes 1.33) with ajv.
	values(d) {
		const [, type, model] = KINDS[d.kindKey];
		const Cls = this.ctx.require(`kubernetes-models/${model}`)[type];
		try {
			new Cls(structuredClone(d.obj)).validate();
		} catch (e) {
			if (!Array.isArray(e.errors)) throw e;
			for (const err of e.errors) {
				const p = err.instancePath.split("/").slice(1).map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~")).map((s) => (/^\d+$/.test(s) ? Number(s) : s));
				let msg = err.message;
				if (err.params?.allowedValues) msg += `: ${err.params.allowedValues.join(", ")}`;
				if (err.params?.missingProperty) p.push(err.params.missingProperty);
				this.problem(d, p, `Kubernetes ${K8S_VALUES} schema: ${msg}`);
			}
		}
	}

	semantics(d) {
		const o = d.obj;
		// Every sidelane.yaml, used or not, goes through sidelane's parser.
		if (d.kindKey === "v1/ConfigMap" && typeof o.data?.["sidelane.yaml"] === "string")
			this.parseConfig(d, ["data", "sidelane.yaml"]);
		const podPath = { "v1/Pod": ["spec"] }[d.kindKey] ?? (o.spec?.template ? ["spec", "template", "spec"] : null);
		if (!podPath) return;
		if (["apps/v1/Deployment", "apps/v1/DaemonSet", "apps/v1/StatefulSet"].includes(d.kindKey)) {
			// The API server refuses a selector that does not select the template.
			const sel = o.spec?.selector?.matchLabels ?? {};
			const labels = o.spec?.template?.metadata?.labels ?? {};
			for (const [k, v] of Object.entries(sel))
				if (labels[k] !== v)
					this.problem(d, ["spec", "selector", "matchLabels", k], `selector ${k}=${v} does not match the template's labels`);
		}
		const spec = get(o, podPath) ?? {};
		for (const [list, i, c] of containers(spec))
			if (isSidelane(c)) new SidelaneCheck(this, d, podPath, spec, list, i, c).run();
	}
}

function get(o, p) {
	return p.reduce((v, k) => (v === undefined || v === null ? undefined : v[k]), o);
}

// The line of the node at path p, or of its closest ancestor that exists.
function lineOf(d, p) {
	for (let n = p.length; n >= 0; n--) {
		const node = n ? d.doc.getIn(p.slice(0, n), true) : d.doc.contents;
		const off = node?.range?.[0];
		if (off !== undefined) return d.lc.linePos(off).line;
		// getIn on a scalar parent returns the parent's value: keep going
	}
	return 1;
}

// A value as a TypeScript literal, one property per line, recording which
// manifest path each generated line belongs to. null (an empty YAML value)
// is how kubectl spells "unset": undefined here.
function emitTs(v, p, depth, lines, where, d) {
	const pad = "  ".repeat(depth + 1);
	const last = lines.length - 1;
	if (v === null || v === undefined) {
		lines[last] += " undefined";
	} else if (Array.isArray(v)) {
		lines[last] += " [";
		v.forEach((e, i) => {
			where[lines.length] = [d, [...p, i]];
			lines.push(pad);
			emitTs(e, [...p, i], depth + 1, lines, where, d);
			lines[lines.length - 1] += ",";
		});
		lines.push(pad.slice(2) + "]");
	} else if (typeof v === "object") {
		lines[last] += " {";
		for (const [k, e] of Object.entries(v)) {
			where[lines.length] = [d, [...p, k]];
			lines.push(`${pad}${JSON.stringify(k)}:`);
			emitTs(e, [...p, k], depth + 1, lines, where, d);
			lines[lines.length - 1] += ",";
		}
		lines.push(pad.slice(2) + "}");
	} else {
		lines[last] += " " + JSON.stringify(v);
	}
}

function* containers(spec) {
	for (const list of ["initContainers", "containers"])
		for (const [i, c] of (spec[list] ?? []).entries()) yield [list, i, c];
}

function isSidelane(c) {
	const cmd = c?.command?.[0] ?? "";
	return ["sidelane", "sidelane-k8s"].includes(path.basename(cmd)) || /(^|\/)sidelane(:|@|$)/.test(c?.image ?? "");
}

// "64Mi" -> bytes (the binary and decimal suffixes of resource.Quantity).
export function quantityBytes(q) {
	const m = /^([0-9.]+)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(q));
	if (!m) return NaN;
	const mult = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 }[m[2]] ?? 1;
	return Number(m[1]) * mult;
}

function isUnder(file, dir) {
	const rel = path.posix.relative(dir, file);
	return rel && !rel.startsWith("..") && !path.posix.isAbsolute(rel);
}

// What one sidelane container needs from its pod, given its configuration.
class SidelaneCheck {
	constructor(m, d, podPath, spec, list, i, c) {
		Object.assign(this, { m, d, podPath, spec, list, i, c });
		this.cpath = [...podPath, list, i];
		this.mode = c.command?.[0] === "sidelane-k8s" ? c.command[1] : "run";
	}

	bad(rel, msg) {
		this.m.problem(this.d, [...this.cpath, ...rel], msg);
	}

	volume(name) {
		return (this.spec.volumes ?? []).find((v) => v.name === name);
	}

	mount(at) {
		return (this.c.volumeMounts ?? []).findIndex((vm) => vm.mountPath === at);
	}

	run() {
		const c = this.c;
		if (c.securityContext?.privileged !== true)
			this.bad(["securityContext"], "sidelane run needs privileged: true (BPF load and pinning, cgroup attach, bpffs mount, the host's cgroup namespace)");
		this.hostMount("/sys/fs/bpf", "Bidirectional");
		this.hostMount("/sys/fs/cgroup", null);
		this.nestedMounts();
		const cfg = this.config();
		this.probes(cfg);
		if (this.mode === "pod-run") this.podMode(cfg);
		if (this.mode === "node-run" && this.spec.hostNetwork !== true)
			this.m.problem(this.d, [...this.podPath, "hostNetwork"], "node-run needs hostNetwork: true (the node's addresses are what 'same host' means)");
		if (!cfg) return;
		this.tls(cfg);
		if (cfg.proxy.external) this.foreignProxy(cfg);
		this.inbound(cfg);
		this.grace(cfg);
		this.memory(cfg);
	}

	hostMount(at, propagation) {
		const k = this.mount(at);
		if (k < 0) return this.bad(["volumeMounts"], `no volumeMount at ${at} (the host's ${at})`);
		const vm = this.c.volumeMounts[k];
		const v = this.volume(vm.name);
		if (v?.hostPath?.path !== at) this.bad(["volumeMounts", k, "name"], `${at} must be the hostPath ${at}, got volume ${vm.name}`);
		if (propagation && vm.mountPropagation !== propagation)
			this.bad(["volumeMounts", k], `${at} needs mountPropagation: ${propagation} (a bpffs sidelane mounts must reach the host and outlive the container)`);
	}

	// A mount inside another volume's mount: configMap and secret volumes are
	// read-only, the runtime cannot create the mount point in them.
	nestedMounts() {
		const vms = this.c.volumeMounts ?? [];
		vms.forEach((a, k) => {
			for (const b of vms)
				if (a !== b && isUnder(a.mountPath, b.mountPath))
					this.bad(["volumeMounts", k, "mountPath"], `${a.mountPath} is inside the mount ${b.mountPath}; mount it elsewhere`);
		});
	}

	// The --config file, found through the mounts, run through sidelane's parser.
	config() {
		const args = [...(this.c.command ?? []), ...(this.c.args ?? [])];
		const k = args.indexOf("--config");
		const file = k >= 0 ? args[k + 1] : DEFAULT_CONFIG;
		const vms = this.c.volumeMounts ?? [];
		const i = vms.findIndex((x) => isUnder(file, x.mountPath));
		const vm = vms[i];
		const v = vm && this.volume(vm.name);
		if (!v?.configMap) {
			this.bad(["args"], `--config ${file} is not in a configMap volume mounted into this container`);
			return null;
		}
		// sidelane follows the file through the volume's ..data swap
		if (vm.subPath || vm.subPathExpr)
			this.bad(["volumeMounts", i, "subPath"], `--config ${file} is mounted with subPath: a copy made at start, so a changed ConfigMap never reaches the running sidelane`);
		const rel = path.posix.relative(vm.mountPath, file);
		const item = v.configMap.items ? v.configMap.items.find((it) => it.path === rel) : { key: rel };
		const cm = this.m.docs.find((x) => x.obj.kind === "ConfigMap" && x.obj.metadata?.name === v.configMap.name);
		if (!item || !cm || typeof cm.obj.data?.[item.key] !== "string") {
			this.bad(["args"], `--config ${file}: ConfigMap ${v.configMap.name} key ${item?.key ?? rel} is not in these manifests`);
			return null;
		}
		return this.m.parseConfig(cm, ["data", item.key]);
	}

	probes(cfg) {
		for (const kind of ["startupProbe", "readinessProbe", "livenessProbe"]) {
			const p = this.c[kind];
			if (!p) continue;
			if (p.httpGet || p.tcpSocket || p.grpc)
				this.bad([kind], "use an exec probe: the admin endpoint listens on loopback only and kubelet's httpGet/tcpSocket/grpc probes come from the node");
			const cmd = p.exec?.command ?? [];
			if (cmd[0] === "sidelane-k8s" && cmd[1] === "admin") {
				const env = (this.c.env ?? []).find((e) => e.name === "SIDELANE_ADMIN");
				const addr = env?.value ?? DEFAULT_ADMIN;
				if (cfg && !cfg.admin.enabled) this.bad([kind], "probes the admin endpoint, but admin.listen is empty in the config");
				else if (cfg && cfg.admin.listen !== addr)
					this.bad([kind], `probes ${addr}, but admin.listen is ${cfg.admin.listen} (set SIDELANE_ADMIN)`);
			}
		}
	}

	podMode(cfg) {
		// Native sidecar: starts before the app, stops after it.
		if (this.list !== "initContainers" || this.c.restartPolicy !== "Always")
			this.bad([], "a per-pod sidelane must be a native sidecar: an initContainer with restartPolicy: Always");
		else if (!this.c.startupProbe)
			this.bad([], "no startupProbe: the app would start before capture and inbound steering are attached");
		if (this.list === "initContainers" && this.c.lifecycle?.preStop)
			this.bad(["lifecycle", "preStop"], "a native sidecar's preStop runs when the pod starts terminating, beside the app's shutdown: a drain there refuses the app's last connections (SIGTERM, after the app, drains)");
		const uid = (this.c.env ?? []).find((e) => e.name === "POD_UID");
		if (uid?.valueFrom?.fieldRef?.fieldPath !== "metadata.uid")
			this.bad(["env"], "pod-run needs POD_UID from the downward API (fieldRef metadata.uid)");
		if (cfg?.cgroup) this.bad(["args"], `the config sets cgroup: ${cfg.cgroup}; pod-run passes the pod's`);
	}

	// TLS files must come from a secret (or projected) volume, whole: a
	// subPath mount never sees a rotated file.
	tls(cfg) {
		if (!cfg.tls.enabled) return;
		const vms = this.c.volumeMounts ?? [];
		for (const what of ["cert", "key", "ca"]) {
			const file = cfg.tls[what];
			const k = vms.findIndex((vm) => isUnder(file, vm.mountPath) || vm.mountPath === file);
			const vm = vms[k];
			const v = vm && this.volume(vm.name);
			if (!v) {
				this.bad(["volumeMounts"], `tls.${what} ${file} is on no volume mounted into this container`);
				continue;
			}
			if (!v.secret && !v.projected && !v.csi)
				this.bad(["volumeMounts", k], `tls.${what} ${file} comes from volume ${v.name}, which is not a secret, projected or CSI volume`);
			if (vm.subPath || vm.subPathExpr)
				this.bad(["volumeMounts", k, "subPath"], `tls.${what} is mounted with subPath: rotated certificates never reach a subPath mount`);
			const rel = path.posix.relative(vm.mountPath, file);
			const items = v.secret?.items;
			if (items && !items.some((it) => it.path === rel))
				this.bad(["volumeMounts", k], `tls.${what} ${file}: the secret volume ${v.name} has no item with path ${rel}`);
		}
	}

	// proxy.external: in a pod, the foreign proxy runs in a container of its
	// own, so the pod's cgroup must be the sidecar cgroup too
	// (--foreign-proxy); its Envoy bootstrap, if any, must agree with
	// sidelane.yaml (envoy.mjs).
	foreignProxy(cfg) {
		const args = [...(this.c.command ?? []), ...(this.c.args ?? [])];
		const shared = args.includes("--foreign-proxy");
		if (this.mode === "pod-run" && !shared)
			this.bad(["command"], "proxy.external in a pod needs `sidelane-k8s pod-run --foreign-proxy`: else SO_ORIGINAL_DST is answered and the inbound listener taken only in sidelane's own container, not the proxy's");
		for (const [list, i, c] of containers(this.spec)) {
			if (c === this.c) continue;
			for (const vm of c.volumeMounts ?? []) {
				const cmName = this.volume(vm.name)?.configMap?.name;
				const cm = cmName && this.m.docs.find((x) => x.obj.kind === "ConfigMap" && x.obj.metadata?.name === cmName);
				const text = cm?.obj.data?.["envoy.yaml"];
				if (typeof text !== "string") continue;
				const YAML = this.m.ctx.require("yaml");
				let boot;
				try {
					boot = YAML.parse(text);
				} catch (e) {
					this.m.problem(cm, ["data", "envoy.yaml"], `YAML: ${e.message.split("\n")[0]}`);
					continue;
				}
				for (const [p, msg] of checkEnvoy(boot, cfg, shared))
					this.m.problem(cm, ["data", "envoy.yaml"], `${p.join(".")}: ${msg} (container ${c.name})`);
			}
		}
	}

	// With TLS, inbound refuses plaintext: a kubelet probe on a steered port
	// (it comes from the node, without a certificate) would fail.
	inbound(cfg) {
		const ib = cfg.inbound;
		if (!ib.enabled || ib.mode === "listener" || !cfg.tls.enabled) return;
		const steered = (port) => ib.ports.some(([lo, hi]) => port >= lo && port <= hi) && !ib.exclude_ports.some(([lo, hi]) => port >= lo && port <= hi);
		for (const [list, i, c] of containers(this.spec)) {
			if (c === this.c) continue;
			for (const kind of ["startupProbe", "readinessProbe", "livenessProbe"]) {
				const pr = c[kind];
				const h = pr?.httpGet ?? pr?.tcpSocket ?? pr?.grpc;
				if (!h) continue;
				let port = h.port;
				if (typeof port === "string") port = (c.ports ?? []).find((p) => p.name === port)?.containerPort;
				if (typeof port === "number" && steered(port))
					this.m.problem(this.d, [...this.podPath, list, i, kind], `probes port ${port}, which inbound steers to sidelane's mTLS listener: kubelet has no client certificate, the probe would fail`);
			}
		}
	}

	grace(cfg) {
		if (!cfg.admin) return;
		const g = this.spec.terminationGracePeriodSeconds ?? 30;
		if (g * 1000 < cfg.admin.drain_timeout_ms + EXIT_MARGIN_MS)
			this.m.problem(this.d, [...this.podPath, "terminationGracePeriodSeconds"], `${g} s leaves no room for sidelane's drain (admin.drain_timeout_ms ${cfg.admin.drain_timeout_ms} + ${EXIT_MARGIN_MS} ms) after the app has exited`);
	}

	memory(cfg) {
		const lim = this.c.resources?.limits?.memory;
		if (lim === undefined) return this.bad(["resources"], "no memory limit");
		const proxy = !cfg.proxy.external && (cfg.capture.enabled || cfg.inbound.enabled || cfg.proxy.ambassadors > 0);
		const maps = BUDGET.mapsFixed + (cfg.limits?.max_conns ?? 4096) * BUDGET.mapsPerConn;
		let need = maps + BUDGET.process;
		if (proxy) need += cfg.proxy.max_conns * (2 * cfg.proxy.buffer_bytes + (cfg.tls.enabled ? BUDGET.tlsPerConn : 0));
		const have = quantityBytes(lim);
		if (!(have >= need))
			this.bad(["resources", "limits", "memory"], `${lim} < ${Math.ceil(need / MIB)}Mi: BPF maps ${Math.ceil(maps / MIB)}Mi (limits.max_conns ${cfg.limits?.max_conns ?? 4096}) + process ${BUDGET.process / MIB}Mi` +
				(proxy ? ` + proxy.max_conns ${cfg.proxy.max_conns} x (2 x buffer_bytes ${cfg.proxy.buffer_bytes}${cfg.tls.enabled ? " + TLS 64Ki" : ""})` : ""));
	}
}

// Runs the config checker on the block scalar at path p of ConfigMap d and
// maps its "file:line: reason" back onto the manifest.
export function configParser(m, checker) {
	const cache = new Map();
	return (d, p) => {
		const key = `${d.file}#${d.index}#${p.join("/")}`;
		if (cache.has(key)) return cache.get(key);
		const text = get(d.obj, p);
		const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sl-deploy-"));
		const f = path.join(tmp, "sidelane.yaml");
		fs.writeFileSync(f, text);
		const r = spawnSync(checker, ["config", "check", f, "--json"], { encoding: "utf8" });
		fs.rmSync(tmp, { recursive: true, force: true });
		let cfg = null;
		if (r.status === 0) {
			cfg = JSON.parse(r.stdout);
		} else {
			const msg = (r.stderr || r.error?.message || `exit ${r.status}`).trim();
			const mm = /^[^:]*:(\d+): (.*)$/s.exec(msg);
			// A block scalar's content starts on the line after its key.
			const base = lineOf(d, p);
			m.problems.push(new Problem(d.file, mm ? base + Number(mm[1]) : base, `${d.name} ${pathStr(p)}`, `sidelane's config parser: ${mm ? mm[2] : msg}`));
		}
		cache.set(key, cfg);
		return cfg;
	};
}
