// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Static checks of deploy/Dockerfile for deploy-check (no Docker engine here,
// and hadolint is not packaged for Debian): base images pinned by tag, ARGs
// declared where used, every COPY source present in the repository and not
// excluded by the ignore file, apt used with --no-install-recommends and
// cleaned, no build tools in the final stage, the final stage's libraries
// covering every library build/sidelane needs (dpkg -S on this Debian 12
// host, the image's release), and the ENTRYPOINT/CMD the manifests rely on.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { Problem } from "./k8s.mjs";

// Predefined build args that need no ARG line (Docker's proxy args).
const PREDEFINED = new Set(["HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY",
	"http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "all_proxy"]);
const SUBST_OPS = new Set(["ADD", "COPY", "ENV", "EXPOSE", "LABEL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"]);
// Packages that make an image a build image.
const BUILD_TOOL = /^(gcc(-\d+)?|g\+\+(-\d+)?|cpp(-\d+)?|clang(-\d+)?|llvm(-\d+)?(-.*)?|lld(-\d+)?|make|cmake|ninja-build|build-essential|bpftool|pkg-config|pkgconf|binutils|libc6-dev|.*-dev)$/;

// One instruction per logical line; comments and continuations resolved.
export function parseDockerfile(text) {
	const out = [];
	let cur = null;
	text.split("\n").forEach((raw, i) => {
		const line = raw.replace(/\r$/, "");
		if (!cur && /^\s*(#.*)?$/.test(line)) return;
		if (cur && /^\s*#/.test(line)) return; // comment inside a continuation
		const cont = /\\\s*$/.test(line);
		const body = cont ? line.replace(/\\\s*$/, "") : line;
		if (!cur) {
			const m = /^\s*(\w+)\s*(.*)$/.exec(body);
			cur = { line: i + 1, op: m[1].toUpperCase(), args: m[2] };
		} else {
			cur.args += " " + body.trim();
		}
		if (!cont) {
			cur.args = cur.args.trim();
			out.push(cur);
			cur = null;
		}
	});
	if (cur) out.push(cur);
	for (const ins of out) {
		ins.json = null;
		if (/^\[/.test(ins.args))
			try {
				ins.json = JSON.parse(ins.args);
			} catch {
				/* shell form after all */
			}
		// --flag=value options of COPY/ADD/FROM/RUN
		ins.flags = {};
		let rest = ins.args;
		for (let m; (m = /^--([\w-]+)(?:=(\S*))?\s+/.exec(rest)); rest = rest.slice(m[0].length)) ins.flags[m[1]] = m[2] ?? true;
		ins.rest = rest;
	}
	return out;
}

// Docker's ignore-file semantics: a pattern excludes a path when it matches
// it or one of its parents; the last matching pattern decides; ! re-includes.
export function ignoreMatcher(text) {
	const pats = [];
	for (let l of (text ?? "").split("\n")) {
		l = l.trim();
		if (!l || l.startsWith("#")) continue;
		const neg = l.startsWith("!");
		let p = path.posix.normalize((neg ? l.slice(1) : l).trim()).replace(/^\/+/, "").replace(/\/+$/, "");
		const re = new RegExp("^" + p.split(/(\*\*|\*|\?)/).map((t) => (t === "**" ? ".*" : t === "*" ? "[^/]*" : t === "?" ? "[^/]" : t.replace(/[.+^${}()|[\]\\]/g, "\\$&"))).join("") + "$");
		pats.push({ neg, re });
	}
	return (rel) => {
		const parts = rel.split("/");
		let excluded = false;
		for (const { neg, re } of pats)
			for (let n = 1; n <= parts.length; n++)
				if (re.test(parts.slice(0, n).join("/"))) {
					excluded = !neg;
					break;
				}
		return excluded;
	};
}

function filesUnder(abs) {
	const st = fs.statSync(abs);
	if (!st.isDirectory()) return [abs];
	return fs.readdirSync(abs).flatMap((e) => filesUnder(path.join(abs, e)));
}

// dpkg and apt-cache are slow (a glob dpkg -S reads every file list): one
// call each, remembered for the fixtures that check edited Dockerfiles.
const memo = new Map();
function neededPackages(binary) {
	if (memo.has(binary)) return memo.get(binary);
	let out;
	const r = spawnSync("readelf", ["-d", binary], { encoding: "utf8" });
	if (r.status !== 0) {
		out = { error: `readelf -d ${binary} failed: ${r.stderr || r.error}` };
	} else {
		const needed = [...r.stdout.matchAll(/\(NEEDED\)\s+Shared library: \[(.+)\]/g)].map((m) => m[1]);
		// Exact paths are fast for dpkg -S; with merged /usr a library is
		// recorded under /lib or /usr/lib, so ask for both.
		const cache = spawnSync("ldconfig", ["-p"], { encoding: "utf8" }).stdout || "";
		const paths = needed.flatMap((so) => {
			const at = new RegExp(`^\\s+${so.replace(/[.+]/g, "\\$&")} \\(.*\\) => (\\S+)$`, "m").exec(cache)?.[1];
			if (!at) return [`*/${so}`];
			const alt = at.startsWith("/usr/") ? at.slice(4) : "/usr" + at;
			return [at, alt];
		});
		const q = spawnSync("dpkg", ["-S", ...paths], { encoding: "utf8" });
		const map = new Map(needed.map((so) => [so, []]));
		for (const l of (q.stdout || "").split("\n")) {
			const m = /^([^:,]+)(?::\w+)?(?:, [^:]+)*: (.*\/([^/]+))$/.exec(l);
			if (m && map.has(m[3]) && !map.get(m[3]).includes(m[1])) map.get(m[3]).push(m[1]);
		}
		out = { map };
	}
	memo.set(binary, out);
	return out;
}

function knownPackages(names) {
	const key = "apt:" + names.join(" ");
	if (!memo.has(key)) {
		const r = spawnSync("apt-cache", ["policy", ...names], { encoding: "utf8" });
		memo.set(key, new Set([...r.stdout.matchAll(/^(\S+):\n(?:\s.*\n)*?\s+Candidate: (?!\(none\))/gm)].map((m) => m[1].replace(/:\w+$/, ""))));
	}
	return memo.get(key);
}

export function checkDockerfile({ file, text, repo, ignoreText, binary, label }) {
	const problems = [];
	const bad = (line, msg) => problems.push(new Problem(label ?? file, line, "", msg));
	const ins = parseDockerfile(text);
	const ignored = ignoreMatcher(ignoreText);
	const globalArgs = new Map();
	const stages = [];
	let stage = null;
	const subst = (s, scope, line) =>
		s.replace(/\$\{(\w+)(?::?[-+][^}]*)?\}|\$(\w+)/g, (all, a, b) => {
			const name = a ?? b;
			if (scope.has(name)) return scope.get(name) ?? "";
			if (!PREDEFINED.has(name)) bad(line, `$${name} is used but not declared by an ARG ${stage ? "in this stage" : "before FROM"}`);
			return "";
		});
	for (const i of ins) {
		if (i.op === "ARG") {
			const [name, ...v] = i.rest.split("=");
			const val = v.length ? v.join("=").replace(/^"(.*)"$/, "$1") : undefined;
			if (!stage) globalArgs.set(name, val);
			else stage.args.set(name, val ?? globalArgs.get(name));
			continue;
		}
		if (i.op === "FROM") {
			const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(i.rest);
			const image = subst(m[1], globalArgs, i.line);
			stage = { line: i.line, image, name: m[2], args: new Map(), ins: [] };
			const prev = stages.find((s) => s.name && s.name === image);
			stage.from = prev ?? null;
			if (!prev) {
				const noDigest = !/@sha256:[0-9a-f]{64}$/.test(image);
				const tag = /:([^/:@]+)(@|$)/.exec(image)?.[1];
				if (noDigest && !tag) bad(i.line, `base image ${image} is not pinned: give a tag (or a digest)`);
				else if (noDigest && tag === "latest") bad(i.line, `base image ${image}: "latest" is not a pin`);
			}
			stages.push(stage);
			continue;
		}
		if (!stage) {
			bad(i.line, `${i.op} before the first FROM`);
			continue;
		}
		// Docker expands variables in these; RUN, CMD and ENTRYPOINT are
		// left to the shell (where ARGs are environment variables).
		if (SUBST_OPS.has(i.op)) {
			i.args = subst(i.args, stage.args, i.line);
			i.rest = subst(i.rest, stage.args, i.line);
			if (i.json) i.json = i.json.map((a) => subst(a, stage.args, i.line));
		}
		stage.ins.push(i);
	}
	if (!stages.length) {
		bad(1, "no FROM");
		return { problems };
	}
	const final = stages[stages.length - 1];

	for (const s of stages)
		for (const i of s.ins) {
			if (i.op === "COPY" || i.op === "ADD") copySources(i, s);
			if (i.op === "RUN") aptHygiene(i);
			if (i.op === "ADD" && /https?:\/\//.test(i.rest)) bad(i.line, "ADD from a URL: use RUN with a checked download, or COPY");
		}

	function copySources(i, s) {
		if (i.flags.from) {
			if (!stages.some((x) => x.name === i.flags.from)) bad(i.line, `COPY --from=${i.flags.from}: no such stage`);
			return;
		}
		const parts = i.json ?? i.rest.split(/\s+/);
		for (const src of parts.slice(0, -1)) {
			const rel = path.posix.normalize(src).replace(/^\/+/, "").replace(/\/+$/, "");
			const abs = path.join(repo, rel);
			if (!fs.existsSync(abs)) {
				bad(i.line, `COPY source ${src} does not exist in the repository`);
				continue;
			}
			const files = filesUnder(abs).map((f) => path.relative(repo, f).split(path.sep).join("/"));
			const out = files.filter(ignored);
			if (out.length === files.length) bad(i.line, `COPY source ${src} is excluded from the build context by the ignore file`);
			else if (out.length && !fs.statSync(abs).isDirectory()) bad(i.line, `COPY source ${src} is excluded by the ignore file`);
		}
	}

	function aptHygiene(i) {
		const cmd = i.json ? i.json.join(" ") : i.rest;
		if (!/apt-get\s+(-\S+\s+)*install/.test(cmd)) return;
		if (!/--no-install-recommends/.test(cmd)) bad(i.line, "apt-get install without --no-install-recommends");
		if (!/\s-y\b|--yes|--assume-yes/.test(cmd)) bad(i.line, "apt-get install without -y");
		if (/apt-get\s+update/.test(cmd) && !/rm -rf \/var\/lib\/apt\/lists/.test(cmd)) bad(i.line, "apt lists are left in the layer (rm -rf /var/lib/apt/lists/* in the same RUN)");
	}

	// Packages a stage installs with apt-get.
	const installs = (s) =>
		s.ins
			.filter((i) => i.op === "RUN")
			.flatMap((i) => {
				const cmd = i.json ? i.json.join(" ") : i.rest;
				return [...cmd.matchAll(/apt-get\s+(?:-\S+\s+)*install((?:\s+[^&|;]+)?)/g)].flatMap((m) =>
					m[1].split(/\s+/).filter((w) => w && !w.startsWith("-") && !/=/.test(w)).map((p) => ({ pkg: p, line: i.line })));
			});
	const finalPkgs = installs(final);

	// The final stage: not built on the build stage, no build tools in it.
	if (final.from) bad(final.line, `the final stage is built FROM ${final.image}: it inherits that stage's tools`);
	for (const { pkg, line } of finalPkgs)
		if (BUILD_TOOL.test(pkg)) bad(line, `the final stage installs ${pkg}: build tools belong in the build stage`);

	// ENTRYPOINT / CMD: what deploy/k8s/*.yaml and the README rely on.
	const last = (op) => [...final.ins].reverse().find((i) => i.op === op);
	const ep = last("ENTRYPOINT");
	if (!ep || JSON.stringify(ep.json) !== JSON.stringify(["sidelane"]))
		bad(ep?.line ?? final.line, 'the final stage needs ENTRYPOINT ["sidelane"] (exec form)');
	const cmd = last("CMD");
	const cfgAt = cmd?.json?.[cmd.json.indexOf("--config") + 1];
	if (!cmd?.json || cmd.json[0] !== "run" || cfgAt !== "/etc/sidelane/sidelane.yaml")
		bad(cmd?.line ?? final.line, 'the default CMD must be exec form ["run", "--config", "/etc/sidelane/sidelane.yaml", ...]');
	const dests = final.ins.filter((i) => i.op === "COPY" || i.op === "ADD").map((i) => (i.json ?? i.rest.split(/\s+/)).slice(-1)[0]);
	for (const want of ["/usr/local/bin/sidelane", "/usr/local/bin/sidelane-k8s", "/etc/sidelane/sidelane.yaml"])
		if (!dests.includes(want)) bad(final.line, `the final stage does not install ${want}`);

	const skipped = [];
	runtimeLibraries();
	packagesExist();

	// Every NEEDED library of the binary must come from a package the final
	// stage installs (or libc6, which every Debian image has).
	function runtimeLibraries() {
		const release = (fs.existsSync("/etc/debian_version") ? fs.readFileSync("/etc/debian_version", "utf8") : "").trim();
		const want = /^debian:(\d+)/.exec(final.image)?.[1];
		if (!want || release.split(".")[0] !== want) {
			skipped.push(`runtime libraries: this host is not Debian ${want ?? "?"} (it is ${release || "not Debian"}), dpkg cannot name the image's packages`);
			return;
		}
		const owners = neededPackages(binary);
		if (owners.error) return bad(final.line, owners.error);
		const have = new Set([...finalPkgs.map((p) => p.pkg), "libc6"]);
		for (const [so, pkgs] of owners.map) {
			if (!pkgs.length) bad(final.line, `no installed Debian package ships ${so} (NEEDED by ${binary})`);
			else if (!pkgs.some((p) => have.has(p))) bad(final.line, `${so} (NEEDED by ${binary}) comes from ${pkgs.join(" or ")}, which the final stage does not install`);
		}
	}

	// The names must exist in Debian 12 (apt-cache, when the host has lists).
	function packagesExist() {
		const all = stages.flatMap((s) => installs(s));
		if (!all.length) return;
		const lists = fs.existsSync("/var/lib/apt/lists") && fs.readdirSync("/var/lib/apt/lists").some((f) => f.includes("_Packages"));
		if (!lists) {
			skipped.push("package names: no apt lists on this host (apt-get update) to look them up in");
			return;
		}
		const known = knownPackages([...new Set(all.map((p) => p.pkg))]);
		for (const { pkg, line } of all) if (!known.has(pkg)) bad(line, `no Debian package named ${pkg} (apt-cache policy)`);
	}

	const version = final.args.get("VERSION");
	return { problems, skipped, version, final, stages };
}
