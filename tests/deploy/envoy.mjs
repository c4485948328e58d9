// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Envoy's bootstrap next to a sidelane with proxy.external (deploy-check,
// called by k8s.mjs): no Envoy runs here, so what is checked is that the
// two configurations agree. Envoy listens where sidelane sends captured
// and steered connections, the outbound listener recovers the original
// destination and its cluster dials it, Envoy's admin stays on loopback
// off sidelane's ports, and, when Envoy shares the app's cgroup, every
// cluster that leaves the pod marks its sockets with capture.mark before
// connecting (else capture would send Envoy's own connects back to Envoy).

const ORIGINAL_DST_FILTER = "envoy.filters.listener.original_dst";
const TCP_PROXY = "envoy.filters.network.tcp_proxy";
const SOL_SOCKET = 1;
const SO_MARK = 36;

// "127.0.0.1:15001" / "[::1]:15001" -> { host, port }
function endpoint(s) {
	const m = /^\[?([^\]]*)\]?:(\d+)$/.exec(s ?? "");
	return m ? { host: m[1], port: Number(m[2]) } : null;
}

function sockAddr(a) {
	const sa = a?.socket_address;
	return sa ? { host: sa.address, port: Number(sa.port_value) } : null;
}

const loopback = (h) => /^127\./.test(h) || h === "::1" || h === "localhost";

// The clusters a listener's tcp_proxy filters name.
function tcpClusters(listener) {
	const out = [];
	for (const fc of listener.filter_chains ?? [])
		for (const f of fc.filters ?? [])
			if (f.name === TCP_PROXY && f.typed_config?.cluster) out.push(f.typed_config.cluster);
	return out;
}

// cfg: sidelane's config as `sidelane config check --json` prints it;
// shared: Envoy runs in the app's cgroup (pod-run --foreign-proxy). Returns
// [path, message] problems, path relative to the bootstrap.
export function checkEnvoy(boot, cfg, shared) {
	const problems = [];
	const bad = (p, msg) => problems.push([p, msg]);
	const listeners = boot?.static_resources?.listeners ?? [];
	const clusters = boot?.static_resources?.clusters ?? [];
	const cluster = (name) => clusters.find((c) => c.name === name);
	const at = (ep) => listeners.findIndex((l) => {
		const a = sockAddr(l.address);
		return a && a.port === ep.port && (a.host === ep.host || a.host === "0.0.0.0" || a.host === "::");
	});
	const admin = sockAddr(boot?.admin?.address);
	const taken = [];

	if (cfg.capture.enabled) {
		const ep = endpoint(cfg.capture.outbound);
		const i = ep ? at(ep) : -1;
		if (i < 0) bad(["static_resources", "listeners"], `no listener on capture.outbound ${cfg.capture.outbound}: captured connections would be refused`);
		else {
			const l = listeners[i];
			taken.push(ep.port);
			if (!(l.listener_filters ?? []).some((f) => f.name === ORIGINAL_DST_FILTER))
				bad(["static_resources", "listeners", i, "listener_filters"], `listener ${l.name} (capture.outbound) has no ${ORIGINAL_DST_FILTER}: it cannot learn where the app connected`);
			for (const name of tcpClusters(l)) {
				const c = cluster(name);
				if (!c) bad(["static_resources", "listeners", i], `listener ${l.name} names cluster ${name}, which is not defined`);
				else if (c.type !== "ORIGINAL_DST" || c.lb_policy !== "CLUSTER_PROVIDED")
					bad(["static_resources", "clusters", clusters.indexOf(c)], `cluster ${name} behind capture.outbound must be type ORIGINAL_DST with lb_policy CLUSTER_PROVIDED (the destination the app asked for)`);
			}
		}
	}
	if (cfg.inbound.enabled) {
		const ep = endpoint(cfg.inbound.listen);
		const i = ep ? listeners.findIndex((l) => sockAddr(l.address)?.port === ep.port) : -1;
		if (i < 0) bad(["static_resources", "listeners"], `no listener on inbound.listen's port ${ep?.port}: sk_lookup would have no socket to steer to, and refuse the app's ports`);
		else taken.push(ep.port);
	}
	if (!admin || !loopback(admin.host))
		bad(["admin", "address"], "Envoy's admin interface must listen on loopback (it can stop Envoy)");
	else if ([...taken, endpoint(cfg.admin?.listen ?? "")?.port].includes(admin.port))
		bad(["admin", "address"], `Envoy's admin port ${admin.port} is one sidelane or a listener above uses`);
	if (shared && cfg.capture.enabled)
		clusters.forEach((c, k) => {
			// a cluster whose endpoints are all on loopback is never captured
			const eps = (c.load_assignment?.endpoints ?? []).flatMap((e) => e.lb_endpoints ?? []).map((e) => sockAddr(e.endpoint?.address));
			if (c.type !== "ORIGINAL_DST" && eps.length && eps.every((a) => a && loopback(a.host))) return;
			const opts = c.upstream_bind_config?.socket_options ?? [];
			const mark = opts.find((o) => Number(o.level) === SOL_SOCKET && Number(o.name) === SO_MARK);
			if (!mark)
				bad(["static_resources", "clusters", k], `cluster ${c.name}: no SO_MARK socket option (level 1, name 36) in upstream_bind_config: Envoy shares the app's cgroup, so capture would send its own connects back to it`);
			else if (Number(mark.int_value) !== Number(cfg.capture.mark))
				bad(["static_resources", "clusters", k], `cluster ${c.name}: SO_MARK ${mark.int_value} is not capture.mark ${cfg.capture.mark}`);
			else if (mark.state !== "STATE_PREBIND")
				bad(["static_resources", "clusters", k], `cluster ${c.name}: SO_MARK must be set STATE_PREBIND, before connect() (capture runs at connect)`);
		});
	return problems;
}
