/**
 * The reconcile's pure half: from what the kernel holds (observed) and what the dataplane asks for
 * (desired), the exact commands that move one to the other, and the state the kernel holds once
 * they ran. Nothing here runs a process, so the command lists are tested without a kernel.
 *
 * Order inside the node's `ip -batch` (each step only needs the ones before it):
 *  1. deletes of stale routes, neighbours and addresses (on devices that stay);
 *  2. deletes of stale pod veths and links, and of those that must be rebuilt (a pod whose
 *     configuration hash changed, a link whose kind or vxlan parameters changed) — which takes
 *     every route, address, neighbour and FDB entry on them along;
 *  3. new links (bridges first), with their alias; then masters, bridge options, MTU, MAC, up;
 *  4. new pod veths (the peer is created directly inside the pod's netns under its final name);
 *  5. addresses, permanent neighbours, then routes (device routes before routes with a gateway).
 * The pod side of every new veth is one `ip -batch` inside the pod's netns; FDB entries are one
 * `bridge -batch`; sysctls one write; the nft table one `nft -f` transaction.
 */
import { Prefix, addressRange, isAddress, parseInterfaceAddress, podRouteMetric } from "@cnikit/core";
import { deleteTableScript, replaceTableScript } from "./nft.ts";
import { cloneState, linkAlias, podAlias, type DesiredState, type KernelState, type LinkState, type PodState, type RouteState } from "./state.ts";

/** One line of a batch, with the pod (host interface) it belongs to, if any. */
export interface PlannedLine {
  line: string;
  /** Host interface of the pod the line exists for: its failure fails that pod only. */
  pod?: string;
  /** A delete: failing because the object is already gone is not an error. */
  del?: boolean;
}

/** The `ip -batch` of one new pod veth's container side. */
export interface PodSidePlan {
  hostIf: string;
  key: string;
  netns: string;
  lines: string[];
}

/** What an apply runs, and the owned state afterwards. */
export interface ApplyPlan {
  /** `nft -f` script (table replaced or removed), undefined when the table is as wanted. */
  nft?: string;
  node: PlannedLine[];
  fdb: PlannedLine[];
  podSides: PodSidePlan[];
  sysctls: { key: string; value: string; pod?: string }[];
  /** Host interfaces of pods created (or rebuilt) by this plan. */
  createdPods: string[];
  /** Addresses on links we do not own that this plan adds / removes (`dev cidr`). */
  foreignAdded: string[];
  foreignRemoved: string[];
  /** The owned state once everything ran. */
  after: KernelState;
}

/** Inputs of `planApply`. */
export interface PlanInput {
  observed: KernelState;
  desired: DesiredState;
  owner: string;
  /** Protocol number of our routes and neighbours. */
  proto: number;
  /** `dev cidr` of addresses present on links we do not own and did not add. */
  foreignAddrs: ReadonlySet<string>;
  /** Host interfaces of pods whose container side must be rebuilt even though the hash matches. */
  rebuildPods?: ReadonlySet<string>;
  /**
   * Link kinds a userspace datapath creates (core `UserspaceDatapath`): a new link of such a kind
   * exists already when the batch runs (the renderer had it made), so it gets its MAC and MTU set
   * instead of `link add`; everything else (alias, master, up) is as for any link.
   */
  userspaceKinds?: ReadonlySet<string>;
}

function vxlanDiffers(o: LinkState, d: LinkState): boolean {
  const a = o.vxlan;
  const b = d.vxlan;
  if (!a || !b) return a !== b;
  return a.vni !== b.vni || a.port !== b.port || a.local !== b.local || a.learning !== b.learning || a.gbp !== b.gbp || (b.dev !== undefined && a.dev !== b.dev);
}

function linkAddLine(l: LinkState): string {
  const parts = ["link add", l.name, "address", l.mac];
  // A bridge's MTU given at creation is not "set by the user": the kernel would re-derive it from
  // the ports whenever one comes or goes. It is set with its own `link set` (which pins it) instead.
  if (l.mtu !== undefined && l.kind !== "bridge") parts.push("mtu", String(l.mtu));
  parts.push("type", l.kind);
  if (l.kind === "bridge" && l.nfCall) parts.push("nf_call_iptables 1 nf_call_ip6tables 1");
  if (l.kind === "vxlan" && l.vxlan) {
    const v = l.vxlan;
    parts.push("id", String(v.vni), "dstport", String(v.port), "local", v.local);
    if (v.dev !== undefined) parts.push("dev", v.dev);
    parts.push(v.learning ? "learning" : "nolearning");
    if (v.gbp) parts.push("gbp");
  }
  return parts.join(" ");
}

function routeSame(o: RouteState, d: RouteState): boolean {
  return o.type === d.type && o.via === d.via && (d.dev === undefined || o.dev === d.dev) && o.onlink === d.onlink && o.src === d.src && o.mtu === d.mtu;
}

/** `route replace ...` of a desired route, with our protocol. */
export function routeReplaceLine(r: RouteState, proto: number): string {
  const parts = ["route replace"];
  if (r.type !== "unicast") parts.push(r.type);
  parts.push(r.dst);
  if (r.via !== undefined) parts.push("via", r.via);
  if (r.dev !== undefined && r.type !== "blackhole" && r.type !== "unreachable") parts.push("dev", r.dev);
  if (r.onlink) parts.push("onlink");
  if (r.src !== undefined) parts.push("src", r.src);
  parts.push("metric", String(r.metric));
  if (r.mtu !== undefined) parts.push("mtu", String(r.mtu));
  parts.push("table", String(r.table), "proto", String(proto));
  return parts.join(" ");
}

function routeDelLine(r: RouteState, proto: number): string {
  return `route del ${r.dst} metric ${r.metric} table ${r.table} proto ${proto}`;
}

function isLinkLocal6(cidr: string): boolean {
  const address = cidr.split("/")[0]!;
  return isAddress(address, 6) && addressRange(address) === "linkLocal";
}

/**
 * The container-side batch of a pod: lo up, addresses, link up, routes (device routes first).
 * `rank` is the interface's rank in its container (`podInterfaceRanks`): above 0, its routes, and
 * its connected routes (the addresses go in with `noprefixroute`), get `podRouteMetric`'s higher
 * metric, so they sit beside the first interface's instead of replacing them.
 */
export function podSideLines(pod: NonNullable<PodState["spec"]>, rank = 0): string[] {
  const lines = ["link set dev lo up"];
  const metric = (dst: Prefix, connected: boolean, own?: number): string =>
    own === undefined && rank === 0 ? "" : ` metric ${podRouteMetric({ family: dst.family, rank, connected, ...(own !== undefined ? { metric: own } : {}) })}`;
  const connected: string[] = [];
  for (const a of pod.addresses) {
    lines.push(`addr add ${a} dev ${pod.ifName}${a.includes(":") ? " nodad" : ""}${rank > 0 ? " noprefixroute" : ""}`);
    const ia = parseInterfaceAddress(a);
    if (rank > 0 && ia.prefix.length < ia.prefix.bits) connected.push(`route replace ${ia.prefix.toString()} dev ${pod.ifName} scope link src ${ia.address}${metric(ia.prefix, true)}`);
  }
  lines.push(`link set dev ${pod.ifName} up`);
  lines.push(...connected);
  const direct = pod.routes.filter((r) => r.via === undefined);
  const viaGw = pod.routes.filter((r) => r.via !== undefined);
  for (const r of direct) {
    const dst = Prefix.parse(r.dst);
    lines.push(`route replace ${dst.toString()} dev ${pod.ifName}${r.scopeLink ? " scope link" : ""}${metric(dst, false, r.metric)}`);
  }
  for (const r of viaGw) {
    const dst = Prefix.parse(r.dst);
    lines.push(`route replace ${dst.toString()} via ${r.via} dev ${pod.ifName}${metric(dst, false, r.metric)}`);
  }
  return lines;
}

/**
 * The commands that turn `observed` into `desired`, touching only owned objects, and the state
 * afterwards. Applying the plan's commands to a kernel holding `observed` leaves `after`, and
 * `planApply` of (`after`, same desired) is empty. Pure.
 */
export function planApply(input: PlanInput): ApplyPlan {
  const { desired, owner, proto } = input;
  const obs = cloneState(input.observed);
  const rebuild = input.rebuildPods ?? new Set<string>();
  const pre: PlannedLine[] = [];
  const dels: PlannedLine[] = [];
  const creates: PlannedLine[] = [];
  const late: PlannedLine[] = [];
  const podLines: PlannedLine[] = [];
  const posts: PlannedLine[] = [];
  const podSides: PodSidePlan[] = [];
  const createdPods: string[] = [];
  const gone = new Set<string>();
  const goneBridges = new Set<string>();
  const podOf = (dev: string | undefined): { pod?: string } => (dev !== undefined && desired.pods.has(dev) ? { pod: dev } : {});

  // Links and pods that go away or are rebuilt.
  for (const [name, o] of obs.links) {
    const d = desired.links.get(name);
    if (!d || d.kind !== o.kind || vxlanDiffers(o, d)) {
      dels.push({ line: `link del dev ${name}`, del: true });
      gone.add(name);
      if (o.kind === "bridge") goneBridges.add(name);
      obs.links.delete(name);
    }
  }
  for (const [hostIf, o] of obs.pods) {
    const d = desired.pods.get(hostIf);
    if (!d || d.hash !== o.hash || rebuild.has(hostIf)) {
      dels.push({ line: `link del dev ${hostIf}`, del: true });
      gone.add(hostIf);
      obs.pods.delete(hostIf);
    }
  }
  const onGone = (dev: string | undefined) => dev !== undefined && gone.has(dev);
  for (const [k, a] of obs.addrs) if (onGone(a.dev)) obs.addrs.delete(k);
  for (const [k, r] of obs.routes) if (onGone(r.dev)) obs.routes.delete(k);
  for (const [k, n] of obs.neigh) if (onGone(n.dev)) obs.neigh.delete(k);
  for (const [k, f] of obs.fdb) if (onGone(f.dev)) obs.fdb.delete(k);
  for (const k of [...obs.sysctls.keys()]) {
    const m = /^net\/ipv4\/conf\/(.+)\/proxy_arp$/.exec(k);
    if (m && gone.has(m[1]!)) obs.sysctls.delete(k);
  }
  for (const l of obs.links.values()) if (l.master !== undefined && goneBridges.has(l.master)) delete l.master;
  for (const p of obs.pods.values()) if (p.master !== undefined && goneBridges.has(p.master)) delete p.master;

  // Stale routes, neighbours, addresses on devices that stay.
  const foreignAdded: string[] = [];
  const foreignRemoved: string[] = [];
  for (const [k, r] of obs.routes) {
    if (!desired.routes.has(k)) pre.push({ line: routeDelLine(r, proto), del: true });
  }
  for (const [k, n] of obs.neigh) {
    if (!desired.neigh.has(k)) pre.push({ line: `neigh del ${n.ip} dev ${n.dev}`, del: true });
  }
  const ownedDev = (dev: string) => desired.links.has(dev) || desired.pods.has(dev);
  for (const [k, a] of obs.addrs) {
    if (desired.addrs.has(k)) continue;
    if (isLinkLocal6(a.cidr) && ownedDev(a.dev)) continue;
    pre.push({ line: `addr del ${a.cidr} dev ${a.dev}`, del: true });
    if (!ownedDev(a.dev) && !obs.links.has(a.dev) && !obs.pods.has(a.dev)) foreignRemoved.push(k);
  }

  // Links: create or modify.
  const newLinks = [...desired.links.values()].filter((d) => !obs.links.has(d.name));
  newLinks.sort((a, b) => (a.kind === "bridge" ? 0 : 1) - (b.kind === "bridge" ? 0 : 1) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const d of newLinks) {
    if (input.userspaceKinds?.has(d.kind)) {
      creates.push({ line: `link set dev ${d.name} address ${d.mac}` });
      if (d.mtu !== undefined) creates.push({ line: `link set dev ${d.name} mtu ${d.mtu}` });
    } else creates.push({ line: linkAddLine(d) });
    creates.push({ line: `link set dev ${d.name} alias ${linkAlias(owner)}` });
  }
  for (const d of newLinks) {
    if (d.kind === "bridge" && d.mtu !== undefined) late.push({ line: `link set dev ${d.name} mtu ${d.mtu}` });
    if (d.master !== undefined) late.push({ line: `link set dev ${d.name} master ${d.master}` });
    late.push({ line: `link set dev ${d.name} up` });
  }
  for (const d of desired.links.values()) {
    const o = obs.links.get(d.name);
    if (!o) continue;
    if (o.mac !== d.mac) late.push({ line: `link set dev ${d.name} address ${d.mac}` });
    if (d.mtu !== undefined && o.mtu !== d.mtu) late.push({ line: `link set dev ${d.name} mtu ${d.mtu}` });
    if (o.master !== d.master) late.push({ line: d.master === undefined ? `link set dev ${d.name} nomaster` : `link set dev ${d.name} master ${d.master}` });
    if (d.kind === "bridge" && (o.nfCall ?? false) !== (d.nfCall ?? false)) {
      const v = d.nfCall ? 1 : 0;
      late.push({ line: `link set dev ${d.name} type bridge nf_call_iptables ${v} nf_call_ip6tables ${v}` });
    }
    if (!o.up) late.push({ line: `link set dev ${d.name} up` });
  }

  // Pods: create (veth straight into the pod's netns) or fix the host side.
  for (const d of [...desired.pods.values()].sort((a, b) => (a.hostIf < b.hostIf ? -1 : 1))) {
    const spec = d.spec!;
    const o = obs.pods.get(d.hostIf);
    const tag = { pod: d.hostIf };
    if (!o) {
      createdPods.push(d.hostIf);
      podLines.push({
        line: `link add ${d.hostIf} address ${d.hostMac} mtu ${spec.mtu} type veth peer name ${spec.ifName} address ${d.spec!.mac.toLowerCase()} mtu ${spec.mtu} netns ${spec.netns}`,
        ...tag,
      });
      podLines.push({ line: `link set dev ${d.hostIf} alias ${podAlias(owner, d.hash)}`, ...tag });
      if (d.master !== undefined) podLines.push({ line: `link set dev ${d.hostIf} master ${d.master}`, ...tag });
      podLines.push({ line: `link set dev ${d.hostIf} up`, ...tag });
      podSides.push({ hostIf: d.hostIf, key: spec.key, netns: spec.netns!, lines: podSideLines(spec, d.rank ?? 0) });
      continue;
    }
    if (o.master !== d.master) podLines.push({ line: d.master === undefined ? `link set dev ${d.hostIf} nomaster` : `link set dev ${d.hostIf} master ${d.master}`, ...tag });
    if (!o.up) podLines.push({ line: `link set dev ${d.hostIf} up`, ...tag });
  }

  // Addresses, neighbours, routes.
  for (const [k, a] of desired.addrs) {
    if (obs.addrs.has(k)) continue;
    if (!ownedDev(a.dev) && input.foreignAddrs.has(k)) continue;
    posts.push({ line: `addr add ${a.cidr} dev ${a.dev}${a.family === 6 ? " nodad" : ""}`, ...podOf(a.dev) });
    if (!ownedDev(a.dev)) foreignAdded.push(k);
  }
  for (const [k, n] of desired.neigh) {
    const o = obs.neigh.get(k);
    if (o && o.mac === n.mac) continue;
    posts.push({ line: `neigh replace ${n.ip} lladdr ${n.mac} dev ${n.dev} nud permanent protocol ${proto}`, ...podOf(n.dev) });
  }
  const routeLines: { r: RouteState; line: PlannedLine }[] = [];
  for (const [k, r] of desired.routes) {
    const o = obs.routes.get(k);
    if (o && routeSame(o, r)) continue;
    routeLines.push({ r, line: { line: routeReplaceLine(r, proto), ...podOf(r.dev) } });
  }
  routeLines.sort((a, b) => (a.r.via === undefined ? 0 : 1) - (b.r.via === undefined ? 0 : 1));
  posts.push(...routeLines.map((x) => x.line));

  // FDB.
  const fdb: PlannedLine[] = [];
  for (const [k, f] of obs.fdb) {
    if (!desired.fdb.has(k)) fdb.push({ line: `fdb del ${f.mac} dev ${f.dev} dst ${f.dst}${f.vni !== undefined ? ` vni ${f.vni}` : ""}`, del: true });
  }
  for (const [k, f] of desired.fdb) {
    if (!obs.fdb.has(k)) fdb.push({ line: `fdb append ${f.mac} dev ${f.dev} dst ${f.dst}${f.vni !== undefined ? ` vni ${f.vni}` : ""} self permanent` });
  }

  // Sysctls: desired values, and proxy_arp switched off where it is no longer asked for.
  const sysctls: { key: string; value: string; pod?: string }[] = [];
  for (const [k, v] of desired.sysctls) {
    if (obs.sysctls.get(k) === v) continue;
    const m = /^net\/ipv4\/conf\/(.+)\/proxy_arp$/.exec(k);
    sysctls.push({ key: k, value: v, ...podOf(m?.[1]) });
  }
  for (const [k, v] of obs.sysctls) {
    const m = /^net\/ipv4\/conf\/(.+)\/proxy_arp$/.exec(k);
    if (!m || v !== "1" || desired.sysctls.has(k)) continue;
    const dev = m[1]!;
    if (!ownedDev(dev) && !input.observed.sysctls.has(k)) continue;
    sysctls.push({ key: k, value: "0" });
  }

  const after: KernelState = {
    links: new Map([...desired.links].map(([k, v]) => [k, { ...v }])),
    pods: new Map([...desired.pods].map(([k, v]) => [k, { ...v }])),
    addrs: new Map([...desired.addrs].filter(([k, a]) => ownedDev(a.dev) || !input.foreignAddrs.has(k) || obs.addrs.has(k))),
    routes: new Map(desired.routes),
    neigh: new Map(desired.neigh),
    fdb: new Map(desired.fdb),
    sysctls: new Map([...obs.sysctls, ...sysctls.map((s) => [s.key, s.value] as const), ...desired.sysctls]),
    nft: desired.nft,
  };
  for (const k of [...after.sysctls.keys()]) {
    const m = /^net\/ipv4\/conf\/(.+)\/proxy_arp$/.exec(k);
    if (m && gone.has(m[1]!) && !desired.links.has(m[1]!) && !desired.pods.has(m[1]!)) after.sysctls.delete(k);
  }
  const plan: ApplyPlan = {
    node: [...pre, ...dels, ...creates, ...late, ...podLines, ...posts],
    fdb,
    podSides,
    sysctls,
    createdPods,
    foreignAdded,
    foreignRemoved,
    after,
  };
  if (desired.nft !== input.observed.nft) plan.nft = desired.nftText !== undefined ? replaceTableScript(owner, desired.nftText) : deleteTableScript(owner);
  return plan;
}

/** Whether a plan changes nothing. */
export function planIsEmpty(plan: ApplyPlan): boolean {
  return plan.nft === undefined && plan.node.length === 0 && plan.fdb.length === 0 && plan.podSides.length === 0 && plan.sysctls.length === 0;
}
