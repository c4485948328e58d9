// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// `make deploy-check` (tests/deploy/deploy.mk): static checks of deploy/,
// which no Docker engine or Kubernetes cluster here can run.
//  1. deploy/k8s/*.yaml against the Kubernetes API schemas and sidelane's own
//     config parser, cross-checked (k8s.mjs);
//  2. deploy/Dockerfile (dockerfile.mjs);
//  3. deploy/sidelane-k8s run with fake inputs (glue.mjs);
//  4. the negative fixtures in tests/deploy/bad/: each must be rejected with
//     a message that contains every "# expect:" line of the fixture.
// Usage: node check.mjs --node-dir DIR --binary BIN [-v]
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { spawnSync } from "node:child_process";
import { checkDockerfile } from "./dockerfile.mjs";
import { checkGlue } from "./glue.mjs";
import { K8S_STRUCTURE, K8S_VALUES, Manifests } from "./k8s.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..", "..");
const rel = (f) => path.relative(repo, f);
const args = process.argv.slice(2);
const opt = (name) => {
	const k = args.indexOf(name);
	if (k < 0 || !args[k + 1]) {
		console.error(`usage: node check.mjs --node-dir DIR --binary BIN [-v] (missing ${name})`);
		process.exit(2);
	}
	return path.resolve(args[k + 1]);
};
const verbose = args.includes("-v");
const nodeDir = opt("--node-dir");
const ctx = {
	nodeDir,
	require: createRequire(path.join(nodeDir, "package.json")),
	binary: opt("--binary"),
};
const t0 = Date.now();
let failed = 0;
let passed = 0;
const skipped = [];
const say = (tag, text) => console.log(`  ${tag.padEnd(8)} ${text}`);
const fail = (text) => {
	failed++;
	console.log(`  FAIL     ${text}`);
};
const pass = (tag, text) => {
	passed++;
	say(tag, text);
};

const MANIFESTS = fs.readdirSync(path.join(repo, "deploy/k8s")).filter((f) => /\.ya?ml$/.test(f)).sort().map((f) => path.join(repo, "deploy/k8s", f));
const DOCKERFILE = path.join(repo, "deploy/Dockerfile");
const IGNORE = path.join(repo, "deploy/Dockerfile.dockerignore");
const GLUE = path.join(repo, "deploy/sidelane-k8s");

function manifests(files) {
	const m = new Manifests(ctx);
	for (const [file, text] of files) m.load(file, text);
	return m;
}

function dockerfileResult(text, label) {
	return checkDockerfile({ file: rel(DOCKERFILE), label, text, repo, ignoreText: fs.readFileSync(IGNORE, "utf8"), binary: ctx.binary });
}

// 1. The manifests, each file on its own (they are applied one by one).
const uses = []; // [where, image, argv] of every command a sidelane container runs
for (const f of MANIFESTS) {
	const m = manifests([[rel(f), fs.readFileSync(f, "utf8")]]);
	const problems = m.check();
	if (problems.length) problems.forEach((p) => fail(String(p)));
	else pass("K8S", `${rel(f)}: ${m.docs.map((d) => d.name).join(", ")}: Kubernetes ${K8S_STRUCTURE} structure, ${K8S_VALUES} values, sidelane.yaml parsed, cross-checks`);
	for (const d of m.docs)
		for (const c of [...(podSpec(d.obj)?.initContainers ?? []), ...(podSpec(d.obj)?.containers ?? [])]) {
			if (!/sidelane/.test(c.image ?? "")) continue;
			const where = `${rel(f)} ${d.name} ${c.name}`;
			uses.push([where, c.image, c.command ?? null]);
			for (const k of ["startupProbe", "readinessProbe", "livenessProbe"])
				if (c[k]?.exec) uses.push([`${where} ${k}`, c.image, c[k].exec.command]);
			for (const k of ["postStart", "preStop"])
				if (c.lifecycle?.[k]?.exec) uses.push([`${where} ${k}`, c.image, c.lifecycle[k].exec.command]);
		}
}

function podSpec(o) {
	return o?.kind === "Pod" ? o.spec : o?.spec?.template?.spec;
}

// 2. The Dockerfile, and what the manifests expect of the image.
const df = dockerfileResult(fs.readFileSync(DOCKERFILE, "utf8"));
skipped.push(...df.skipped.map((s) => `${rel(DOCKERFILE)}: ${s}`));
if (df.problems.length) df.problems.forEach((p) => fail(String(p)));
else pass("DOCKER", `${rel(DOCKERFILE)}: pinned bases, declared ARGs, COPY sources in the context, apt hygiene, no build tools in the final stage, runtime libraries cover build/sidelane`);
const ver = spawnSync(ctx.binary, ["version"], { encoding: "utf8" }).stdout.trim().split(" ").pop();
if (df.version !== ver) fail(`${rel(DOCKERFILE)}: ARG VERSION=${df.version}, but ${rel(ctx.binary)} says ${ver}`);
else pass("DOCKER", `${rel(DOCKERFILE)}: VERSION ${df.version} = sidelane version`);
// Every command the manifests run must exist in the image, with a
// subcommand the program has.
const installed = new Set(df.final.ins.filter((i) => i.op === "COPY" || i.op === "ADD").map((i) => (i.json ?? i.rest.split(/\s+/)).slice(-1)[0]).filter((d) => /^\/usr\/(local\/)?s?bin\//.test(d)).map((d) => path.basename(d)));
const help = spawnSync(ctx.binary, ["--help"], { encoding: "utf8" }).stdout;
const SUBCOMMANDS = {
	sidelane: new Set([...help.matchAll(/^  (\w+)\b/gm)].map((m) => m[1])),
	"sidelane-k8s": new Set(["pod-run", "node-run", "admin"]), // deploy/sidelane-k8s
};
for (const [where, image, argv] of uses) {
	const tag = /:([^/:@]+)$/.exec(image)?.[1];
	const prog = argv ? path.basename(argv[0]) : "sidelane"; // the ENTRYPOINT
	const sub = argv ? argv[1] : df.final.ins.filter((i) => i.op === "CMD").pop()?.json?.[0];
	if (tag !== df.version) fail(`${where}: image ${image} is not the tag of this release (${df.version})`);
	else if (!installed.has(prog)) fail(`${where}: ${prog} is not installed by ${rel(DOCKERFILE)}`);
	else if (SUBCOMMANDS[prog] && !SUBCOMMANDS[prog].has(sub)) fail(`${where}: ${prog} has no subcommand ${sub}`);
	else pass("IMAGE", `${where}: ${argv ? argv.join(" ") : "the ENTRYPOINT"}`);
}

// 3. The glue script.
const glue = await checkGlue(GLUE);
skipped.push(...glue.skipped);
for (const [ok, text] of glue.results) ok ? pass("GLUE", text) : fail(text);

// 4. Bad fixtures: literal manifests or Dockerfiles, or edits of the real
// files. Manifest sets are checked together (one TypeScript program).
const badDir = path.join(here, "bad");
const fixtures = [];
for (const name of fs.readdirSync(badDir).sort()) {
	const file = path.join(badDir, name);
	const text = fs.readFileSync(file, "utf8");
	const fx = { file, expects: [...text.matchAll(/^# expect: (.+)$/gm)].map((m) => m[1].trim()) };
	fixtures.push(fx);
	try {
		Object.assign(fx, fixture(name, text, /^# base: (\S+)$/m.exec(text)?.[1]));
	} catch (e) {
		fx.broken = e.message;
	}
}
const sets = fixtures.filter((fx) => fx.set);
Manifests.checkAll(sets.map((fx) => fx.set)).forEach((problems, k) => (sets[k].problems = problems));
for (const { file, expects, broken, problems } of fixtures) {
	if (!expects.length) {
		fail(`${rel(file)}: no "# expect:" line`);
		continue;
	}
	if (broken) {
		fail(`${rel(file)}: broken fixture: ${broken}`);
		continue;
	}
	const all = problems.map(String);
	const missing = expects.filter((e) => !all.some((p) => p.includes(e)));
	if (!problems.length) fail(`${rel(file)}: accepted, but must be rejected (${expects.join("; ")})`);
	else if (missing.length) fail(`${rel(file)}: rejected, but no message contains: ${missing.join("; ")}\n           got: ${all.join("\n                ")}`);
	else pass("BAD", `${rel(file)}: rejected: ${verbose ? all.join(" | ") : all.find((p) => p.includes(expects[0]))}`);
}

// { set } (manifests, checked later) or { problems } (a Dockerfile).
function fixture(name, text, base) {
	const label = `${rel(path.join(badDir, name))}${base ? ` (= ${base} edited)` : ""}`;
	if (!base)
		return name.endsWith(".Dockerfile") ? { problems: dockerfileResult(text, label).problems } : { set: manifests([[label, text]]) };
	const YAML = ctx.require("yaml");
	const edits = YAML.parse(text);
	const baseText = fs.readFileSync(path.join(repo, base), "utf8");
	if (!/\.ya?ml$/.test(base)) {
		let out = baseText;
		for (const e of edits) {
			const n = out.split(e.replace).length - 1;
			if (n !== 1) throw new Error(`"${e.replace}" occurs ${n} times in ${base}, not once`);
			out = out.replace(e.replace, e.with);
		}
		return { problems: dockerfileResult(out, label).problems };
	}
	const docs = YAML.parseAllDocuments(baseText, { version: "1.1" });
	for (const e of edits) {
		const d = docs.find((x) => `${x.get("kind")}/${x.getIn(["metadata", "name"])}` === e.doc);
		if (!d) throw new Error(`no document ${e.doc} in ${base}`);
		const p = e.set ?? e.delete ?? e.rename;
		if (!d.hasIn(p) && !e.set) throw new Error(`${e.doc} has no ${p.join(".")}`);
		if (e.set) d.setIn(p, e.value);
		else if (e.delete) d.deleteIn(p);
		else {
			const node = d.getIn(p, true);
			d.deleteIn(p);
			d.setIn([...p.slice(0, -1), e.to], node);
		}
	}
	return { set: manifests([[label, docs.map((d) => d.toString({ lineWidth: 0 })).join("---\n")]]) };
}

for (const s of skipped) say("SKIP", s);
const secs = ((Date.now() - t0) / 1000).toFixed(1);
console.log(`deploy-check: ${passed} passed, ${failed} failed, ${skipped.length} skipped (${secs} s)`);
// A skip (not Debian 12, no apt lists, no shellcheck) says why and does not fail.
if (failed) process.exit(1);
