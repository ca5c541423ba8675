/**
 * Section D, preallocation: what every backend that reserves underlay addresses ahead of time
 * through a cluster-level controller (an Azure-like VNet allocator: secondary IP configurations
 * per node, `/32` or block routes of a pod subnet, a `/24` per node in overlay mode) must keep.
 * Judged on the public contract only — the fabric port (`FabricPort.secondaryAddresses()` /
 * `routes()`), membership, the agents' `start()` errors and STATUS, and the pods' ADD results —
 * never on a backend's own store keys, so any preallocating backend is held to the same rule.
 *
 *  - `prealloc.within-subnet`: after joins, pods, a clean leave and a new join, every fabric
 *    reservation is a valid, unshared address of its node's underlay subnet, no subnet holds more
 *    than it has, fabric routes never overlap across nodes, and every pod address lies in what the
 *    fabric gave its node (`reservationProblems`).
 *  - `prealloc.refused-join`: on a small node subnet (a /26; a /25, then a /24, when not even one
 *    node fits) nodes join one at a time until one is refused (its start rejects, or its STATUS
 *    stays not ready) or the bound is reached; the rules above hold at every step, the refused join
 *    leaves the fabric exactly as it was, and after one node leaves cleanly the refused node's
 *    retry succeeds and takes a pod.
 *
 * Both are "not claimed" for a backend with no controller (`createController` absent: it declares
 * no preallocation) and "not applicable" (with the reason) when the fabric stays empty. Exports: `preallocChecks` (registered in checks/index.ts), and the judges
 * `fabricSnapshot`, `reservationProblems`, `fabricDiff`, `smallSubnetTopology` for other runners.
 */
import { Prefix } from "@cnikit/core";
import type { FabricAddress, FabricRoute, NodeInfo } from "@cnikit/core";
import type { SimTopology } from "@cnikit/sim";
import { SOURCES, fail, notApplicable, pass } from "../check.ts";
import type { CheckDefinition, CheckEnv } from "../check.ts";
import { addPods, describeError, describePod, livePods, summarizeProblems, topologyFor } from "../harness.ts";
import type { Harness } from "../harness.ts";
import type { CheckContext, CheckOutcome, SubResult } from "../types.ts";
import { clamp } from "./dynamics.ts";

/** What the fabric holds at one moment: secondary addresses and routes, as the port lists them. */
export interface FabricSnapshot {
  addresses: FabricAddress[];
  routes: FabricRoute[];
}

/**
 * Prefix lengths of the small node subnet `prealloc.refused-join` builds, in order: a /26 (61 usable
 * addresses) first; when it cannot hold even one node (AKS's formula at maxPods 30 needs 62), a
 * /25, then a /24, so that the retry after a leave is exercised too.
 */
export const SMALL_SUBNET_LENGTHS = [26, 25, 24] as const;
/** Joins `prealloc.refused-join` tries before it concludes that no join is refused. */
export const REFUSAL_NODE_BOUND = 16;

/** "Not claimed" for a backend without a cluster-level controller: it declares no preallocation. */
function noController(ctx: CheckContext): { status: "not claimed"; reason: string } | undefined {
  return ctx.backend.createController ? undefined : { status: "not claimed", reason: "the backend has no cluster-level controller (createController): it reserves nothing on the fabric" };
}

/** The fabric's secondary addresses and routes now. */
export async function fabricSnapshot(h: Harness): Promise<FabricSnapshot> {
  const port = h.cluster.fabricPort;
  return { addresses: await port.secondaryAddresses(), routes: await port.routes() };
}

/** "12 secondary addresses (node-1: 4, node-2: 4, ...), 1 route (10.244.0.0/24 -> node-1)". */
export function describeSnapshot(s: FabricSnapshot): string {
  const per = new Map<string, number>();
  for (const a of s.addresses) per.set(a.node, (per.get(a.node) ?? 0) + 1);
  const nodes = [...per].map(([n, c]) => `${n}: ${c}`).join(", ");
  const routes = s.routes.slice(0, 4).map((r) => `${r.dst} -> ${r.node}`);
  if (s.routes.length > 4) routes.push(`${s.routes.length - 4} more`);
  return `${s.addresses.length} secondary address(es)${nodes ? ` (${nodes})` : ""}, ${s.routes.length} route(s)${routes.length ? ` (${routes.join(", ")})` : ""}`;
}

/** What differs between two snapshots, one line per entry ("+ secondary 198.51.100.40 of r-9"). */
export function fabricDiff(before: FabricSnapshot, after: FabricSnapshot): string[] {
  const addr = (a: FabricAddress) => `secondary ${a.address} of ${a.node}`;
  const route = (r: FabricRoute) => `route ${r.dst} -> ${r.node}`;
  const was = new Set([...before.addresses.map(addr), ...before.routes.map(route)]);
  const now = new Set([...after.addresses.map(addr), ...after.routes.map(route)]);
  return [...[...now].filter((x) => !was.has(x)).map((x) => `+ ${x}`), ...[...was].filter((x) => !now.has(x)).map((x) => `- ${x}`)];
}

/** One underlay subnet of the topology, with the addresses nobody may reserve on it. */
interface SubnetView {
  name: string;
  prefix: Prefix;
  /** Address -> why it is not reservable (network, broadcast, gateway, a router's, an external host's). */
  reserved: Map<string, string>;
}

function subnetViews(topology: SimTopology, members: NodeInfo[]): SubnetView[] {
  const views = topology.subnets.map((s) => {
    const prefix = Prefix.parse(s.cidr);
    const reserved = new Map<string, string>();
    if (prefix.family === 4 && prefix.length <= 30) {
      reserved.set(prefix.network, `the network address of ${prefix}`);
      reserved.set(prefix.broadcast, `the broadcast address of ${prefix}`);
    }
    if (s.gateway !== undefined) reserved.set(s.gateway, `the gateway of ${prefix}`);
    return { name: s.name, prefix, reserved };
  });
  const mark = (address: string, why: string) => {
    const v = views.find((x) => x.prefix.contains(address));
    if (v && !v.reserved.has(address)) v.reserved.set(address, why);
  };
  for (const r of topology.routers ?? []) for (const i of r.interfaces) mark(i.address, `an address of router ${r.name}`);
  for (const e of topology.externals ?? []) mark(e.address, `the address of external host ${e.name}`);
  for (const m of members) for (const u of m.underlay) if (u.gateway !== undefined) mark(u.gateway, `the gateway of node ${m.name}`);
  return views;
}

function connected(u: NodeInfo["underlay"][number]): Prefix {
  return Prefix.parse(`${u.address}/${u.prefixLength}`, { allowHostBits: true });
}

const isLinkLocal = (a: string): boolean => /^fe[89ab]/i.test(a) || a.startsWith("169.254.");

/**
 * Every way the fabric's reservations break the rules, described (empty: none):
 *  - a secondary address held by a node that is not a member, outside its node's underlay subnets,
 *    reserved (network, broadcast, gateway, a router's or external host's), a node's primary
 *    address, or held by two nodes;
 *  - a route whose node is not a member, the same prefix listed twice, prefixes of two nodes that
 *    overlap, or a route inside an underlay subnet that covers a reserved address, a node's
 *    primary address or another node's secondary address;
 *  - an underlay subnet holding more addresses (primaries + secondaries + routed inside it) than
 *    its size minus its reserved addresses;
 *  - when the fabric holds anything: a live pod address that is neither one of its node's secondary
 *    addresses nor inside a prefix routed to its node.
 */
export function reservationProblems(h: Harness, snap: FabricSnapshot): string[] {
  const problems: string[] = [];
  const members = h.cluster.members.list();
  const byName = new Map(members.map((m) => [m.name, m]));
  const views = subnetViews(h.cluster.topology, members);
  const viewOf = (a: string) => views.find((v) => v.prefix.family === Prefix.host(a).family && v.prefix.contains(a));
  const primaries = new Map<string, string>();
  for (const m of members) for (const u of m.underlay) primaries.set(u.address, m.name);

  const holders = new Map<string, string[]>();
  for (const a of snap.addresses) {
    holders.set(a.address, [...(holders.get(a.address) ?? []), a.node]);
    const what = `secondary address ${a.address} of ${a.node}`;
    const node = byName.get(a.node);
    if (!node) {
      problems.push(`${what}: ${a.node} is not a member of the cluster (a refused or departed node keeps a reservation)`);
      continue;
    }
    if (!node.underlay.some((u) => connected(u).contains(a.address)))
      problems.push(`${what}: outside every underlay subnet of ${a.node} (${node.underlay.map((u) => connected(u).toString()).join(", ")})`);
    const why = viewOf(a.address)?.reserved.get(a.address);
    if (why) problems.push(`${what}: it is ${why}`);
    const primaryOf = primaries.get(a.address);
    if (primaryOf !== undefined) problems.push(`${what}: it is the primary address of node ${primaryOf}`);
  }
  for (const [address, nodes] of holders) if (nodes.length > 1) problems.push(`secondary address ${address} is held by ${nodes.length} nodes: ${nodes.join(", ")}`);

  const routed = snap.routes.map((r) => ({ route: r, prefix: Prefix.parse(r.dst) }));
  const seenDst = new Set<string>();
  for (const [i, { route, prefix }] of routed.entries()) {
    const what = `fabric route ${route.dst} -> ${route.node}`;
    if (seenDst.has(prefix.toString())) problems.push(`${what}: ${route.dst} is routed twice`);
    seenDst.add(prefix.toString());
    if (!byName.has(route.node)) problems.push(`${what}: ${route.node} is not a member of the cluster`);
    for (const other of routed.slice(i + 1)) {
      if (other.route.node !== route.node && other.prefix.family === prefix.family && other.prefix.overlaps(prefix)) {
        problems.push(`${what} overlaps ${other.route.dst} -> ${other.route.node}: one address routed to two nodes`);
      }
    }
    const view = views.find((v) => v.prefix.family === prefix.family && v.prefix.contains(prefix));
    if (!view) continue;
    for (const [address, why] of view.reserved) if (prefix.contains(address)) problems.push(`${what} covers ${address}, ${why}`);
    for (const [address, node] of primaries)
      if (prefix.family === Prefix.host(address).family && prefix.contains(address)) problems.push(`${what} covers ${address}, the primary address of node ${node}`);
    for (const a of snap.addresses)
      if (a.node !== route.node && prefix.family === Prefix.host(a.address).family && prefix.contains(a.address)) problems.push(`${what} covers ${a.address}, a secondary address of ${a.node}`);
  }

  for (const u of subnetUsage(h, snap)) {
    if (u.primary + u.secondary + u.routed > u.usable) {
      problems.push(
        `subnet ${u.name} (${u.cidr}) holds ${u.primary + u.secondary + u.routed} addresses (${u.primary} primary, ${u.secondary} secondary, ${u.routed} routed) but only ${u.usable} are usable (its size minus network, broadcast, gateway and routers)`,
      );
    }
  }

  if (snap.addresses.length + snap.routes.length > 0) {
    for (const pod of livePods(h)) {
      const mine = new Set(snap.addresses.filter((a) => a.node === pod.node).map((a) => a.address));
      const prefixes = routed.filter((x) => x.route.node === pod.node).map((x) => x.prefix);
      for (const a of pod.addresses) {
        if (isLinkLocal(a) || mine.has(a) || prefixes.some((p) => p.family === Prefix.host(a).family && p.contains(a))) continue;
        const share = [...[...mine].slice(0, 6), ...prefixes.slice(0, 3).map(String)].join(", ") || "nothing";
        problems.push(`${describePod(pod)}: ${a} is not among what the fabric gives ${pod.node} (${share}${mine.size + prefixes.length > 9 ? ", ..." : ""})`);
      }
    }
  }
  return problems;
}

/** How full each IPv4 underlay subnet of the topology is (members' primaries, secondaries, addresses routed inside it). */
export function subnetUsage(h: Harness, snap: FabricSnapshot): { name: string; cidr: string; usable: number; primary: number; secondary: number; routed: number }[] {
  const members = h.cluster.members.list();
  const primaries = members.flatMap((m) => m.underlay.map((u) => u.address));
  return subnetViews(h.cluster.topology, members)
    .filter((v) => v.prefix.family === 4 && v.prefix.length <= 30)
    .map((v) => {
      const inside = (a: string) => Prefix.host(a).family === 4 && v.prefix.contains(a);
      const routed = snap.routes.map((r) => Prefix.parse(r.dst)).filter((p) => p.family === 4 && v.prefix.contains(p));
      return {
        name: v.name,
        cidr: v.prefix.toString(),
        usable: Number(v.prefix.size) - v.reserved.size,
        primary: new Set(primaries.filter(inside)).size,
        secondary: new Set(snap.addresses.map((a) => a.address).filter(inside)).size,
        routed: routed.reduce((n, p) => n + Number(p.size), 0),
      };
    });
}

/**
 * `topology` with its first node subnet (one without external hosts) cut down to a /`length`
 * around its gateway (its routers' addresses must lie inside), so that a preallocating backend
 * runs out after a few nodes. Undefined when the topology has no such subnet. Pure.
 */
export function smallSubnetTopology(topology: SimTopology, length: number = SMALL_SUBNET_LENGTHS[0]): { topology: SimTopology; subnet: string; cidr: string } | undefined {
  const hosting = new Set((topology.externals ?? []).map((e) => e.subnet));
  const s = topology.subnets.find((x) => !hosting.has(x.name) && Prefix.parse(x.cidr).family === 4);
  if (!s) return undefined;
  const full = Prefix.parse(s.cidr);
  if (full.length >= length) return { topology, subnet: s.name, cidr: full.toString() };
  const anchor = Prefix.host(s.gateway ?? full.nth(1)).base;
  const small = Prefix.of(4, anchor & Prefix.maskOf(4, length), length);
  const onIt = (topology.routers ?? []).flatMap((r) => r.interfaces.filter((i) => i.subnet === s.name).map((i) => i.address));
  if (!onIt.every((a) => small.contains(a))) return undefined;
  return { topology: { ...topology, subnets: topology.subnets.map((x) => (x.name === s.name ? { ...x, cidr: small.toString() } : x)) }, subnet: s.name, cidr: small.toString() };
}

/** The simulator's own "no free underlay address left" (not a refusal by the backend). */
function simulatorFull(err: unknown): boolean {
  const e = err as { component?: unknown; field?: unknown } | null;
  return e !== null && typeof e === "object" && e.component === "sim" && e.field === "subnet";
}

const sub = (label: string, status: SubResult["status"], reason: string): SubResult => ({ label, status, reason });

async function withinSubnet(env: CheckEnv): Promise<CheckOutcome> {
  const h = env.harness("prealloc.within-subnet");
  const limitMs = env.summary.convergenceMs;
  const subResults: SubResult[] = [];
  const judge = async (label: string): Promise<string | undefined> => {
    await h.cluster.settle({ limitMs });
    const snap = await fabricSnapshot(h);
    const problems = reservationProblems(h, snap);
    if (problems.length > 0) return `${label}: ${summarizeProblems(problems)} (fabric: ${describeSnapshot(snap)})`;
    subResults.push(sub(label, "passed", describeSnapshot(snap)));
    return undefined;
  };
  const names: string[] = [];
  let refusal = "";
  for (let i = 1; i <= clamp(env.nodes, 3, 6); i++) {
    try {
      names.push((await h.cluster.addNode({ name: `w-${i}` })).name);
    } catch (err) {
      refusal = `; the join of w-${i} was refused (${describeError(err)})`;
      break;
    }
  }
  if (names.length < 2) return notApplicable(`fewer than two nodes could join on the run's underlay${refusal}`);
  await h.cluster.settle({ limitMs });
  try {
    await addPods(h, names, 2);
  } catch (err) {
    return fail(`an ADD on a joined node failed: ${describeError(err)}`, { subResults });
  }
  const joined = `${names.length} joins and ${names.length * 2} pods${refusal}`;
  let problem = await judge(`after ${joined}`);
  if (problem) return fail(problem, { subResults });
  const snap = await fabricSnapshot(h);
  if (snap.addresses.length + snap.routes.length === 0) return notApplicable(`the fabric stayed empty after ${joined}: the backend reserves nothing on it`);
  await h.cluster.removeNode(names[0]!, { mode: "clean" });
  problem = await judge(`after ${names[0]} left cleanly`);
  if (problem) return fail(problem, { subResults });
  try {
    const late = (await h.cluster.addNode({ name: "w-late" })).name;
    await h.cluster.settle({ limitMs });
    await addPods(h, [late], 2, "late");
  } catch (err) {
    return fail(`after ${names[0]} left, a new node and its pods: ${describeError(err)}`, { subResults });
  }
  problem = await judge("after a new node w-late joined and took 2 pods");
  if (problem) return fail(problem, { subResults });
  return pass({ subResults });
}

async function refusedJoin(env: CheckEnv): Promise<CheckOutcome> {
  const subResults: SubResult[] = [];
  let previous = "";
  for (const [i, length] of SMALL_SUBNET_LENGTHS.entries()) {
    const small = smallSubnetTopology(topologyFor(env), length);
    if (!small) return notApplicable(`the run's underlay has no IPv4 node subnet that can be cut down to a /${length} around its routers`);
    if (small.cidr === previous) break;
    previous = small.cidr;
    const outcome = await refusalOn(env, small, subResults, i < SMALL_SUBNET_LENGTHS.length - 1);
    if (outcome !== "first join refused") return outcome;
  }
  subResults.push(sub("retry after a clean leave", "not applicable", `the first join was refused on every subnet tried (/${SMALL_SUBNET_LENGTHS.join(", /")}), so no leave can make room`));
  return pass({ subResults });
}

/**
 * Joins nodes one at a time on `small` until one is refused (or the bound), then the leave and the
 * retry. "first join refused": the very first join was refused and `larger` says a larger subnet is
 * left to try (the refusal itself is judged and recorded in `subResults` first).
 */
async function refusalOn(env: CheckEnv, small: { topology: SimTopology; subnet: string; cidr: string }, subResults: SubResult[], larger: boolean): Promise<CheckOutcome | "first join refused"> {
  const h = env.harness(`prealloc.refused-join ${small.cidr}`, { topology: small.topology });
  const limitMs = env.summary.convergenceMs;
  const where = `${small.cidr} (subnet ${small.subnet})`;
  const accepted: string[] = [];
  let refused: { name: string; why: string; stillMember: boolean } | undefined;
  let before: FabricSnapshot = await fabricSnapshot(h);
  let stop = "";
  for (let i = 1; i <= REFUSAL_NODE_BOUND && !refused; i++) {
    const name = `r-${i}`;
    before = await fabricSnapshot(h);
    try {
      await h.cluster.addNode({ name, subnet: small.subnet });
    } catch (err) {
      if (simulatorFull(err)) {
        stop = `the simulator ran out of primary addresses on ${where} after ${accepted.length} nodes`;
        break;
      }
      refused = { name, why: `its start rejected: ${describeError(err)}`, stillMember: false };
    }
    await h.cluster.settle({ limitMs });
    if (!refused) {
      const st = h.cluster.node(name).agent.status();
      if (!st.ready) refused = { name, why: `its STATUS stayed not ready${st.code ? ` (${st.code})` : ""}: ${st.reason ?? "no reason given"}`, stillMember: true };
    }
    const after = await fabricSnapshot(h);
    const problems = reservationProblems(h, after);
    if (refused) {
      const diff = fabricDiff(before, after);
      if (diff.length > 0) return fail(`the refused join of ${refused.name} on ${where} (${refused.why}) changed the fabric: ${summarizeProblems(diff, 6)}`, { subResults });
      if (problems.length > 0) return fail(`after the refused join of ${refused.name} on ${where}: ${summarizeProblems(problems)}`, { subResults });
      if (accepted.length > 0) subResults.push(sub(`joins 1-${accepted.length} on ${where}`, "passed", `every step within bounds; then ${describeSnapshot(before)}`));
      subResults.push(sub(`refused join of ${refused.name} on ${where}`, "passed", `${refused.why}; the fabric is unchanged: ${describeSnapshot(after)}`));
      break;
    }
    if (problems.length > 0) return fail(`after the join of ${name} (node ${i} on ${where}): ${summarizeProblems(problems)} (fabric: ${describeSnapshot(after)})`, { subResults });
    accepted.push(name);
  }
  if (!refused) {
    const snap = await fabricSnapshot(h);
    if (snap.addresses.length + snap.routes.length === 0) return notApplicable(`the fabric stayed empty after ${accepted.length} joins on ${where}: the backend reserves nothing on it`);
    subResults.push(sub(`joins 1-${accepted.length} on ${where}`, "passed", `every step within bounds: ${describeSnapshot(snap)}`));
    return pass({ subResults, reason: `no join refused within ${accepted.length} nodes on ${where}${stop ? ` (${stop})` : ""}; reservations stayed within bounds at every step` });
  }
  const leaving = accepted[0];
  if (leaving === undefined) {
    if (larger) return "first join refused";
    subResults.push(sub("retry after a clean leave", "not applicable", `the first join was refused: ${where} cannot hold one node, so no leave can make room`));
    return pass({ subResults });
  }
  await h.cluster.removeNode(leaving, { mode: "clean" });
  await h.cluster.settle({ limitMs });
  try {
    if (!refused.stillMember) await h.cluster.addNode({ name: refused.name, subnet: small.subnet });
    await h.cluster.settle({ limitMs });
  } catch (err) {
    const snap = await fabricSnapshot(h);
    const u = subnetUsage(h, snap).find((x) => x.cidr === small.cidr);
    const free = u ? `; ${u.usable - u.primary - u.secondary - u.routed} of its ${u.usable} usable addresses are free on the fabric` : "";
    return fail(`after ${leaving} left cleanly, the retry of ${refused.name} on ${where} was refused again: ${describeError(err)}${free} (fabric: ${describeSnapshot(snap)})`, { subResults });
  }
  const st = h.cluster.node(refused.name).agent.status();
  if (!st.ready) return fail(`after ${leaving} left cleanly, ${refused.name} is still not ready: ${st.reason ?? "no reason given"}`, { subResults });
  try {
    await h.cluster.addPod(refused.name, { name: "after-retry" });
  } catch (err) {
    return fail(`after the retry of ${refused.name}, an ADD on it failed: ${describeError(err)}`, { subResults });
  }
  await h.cluster.settle({ limitMs });
  const snap = await fabricSnapshot(h);
  const problems = reservationProblems(h, snap);
  if (problems.length > 0) return fail(`after ${leaving} left and ${refused.name} joined again: ${summarizeProblems(problems)}`, { subResults });
  subResults.push(sub(`retry of ${refused.name} after ${leaving} left cleanly`, "passed", `${refused.stillMember ? "became ready" : "joined, ready"}, took a pod; ${describeSnapshot(snap)}`));
  return pass({ subResults });
}

export const preallocChecks: CheckDefinition[] = [
  {
    id: "prealloc.within-subnet",
    section: "D",
    rule: "Fabric reservations stay inside their node's underlay subnet: no reserved, primary or shared address, no subnet over capacity, no route overlapping another node's, every pod address from its node's share.",
    source: `${SOURCES.dynamics}; cnikit contract v2 (FabricPort); Azure CNI subnet sizing (1 + maxPods per node)`,
    required: true,
    gate: noController,
    run: withinSubnet,
  },
  {
    id: "prealloc.refused-join",
    section: "D",
    rule: "On a small node subnet a join that does not fit is refused and allocates nothing (the fabric is unchanged), and after a clean leave the refused node's retry succeeds.",
    source: `${SOURCES.dynamics}; AKS "Pre-allocated IPs N exceeds IPs available M" (InsufficientSubnetSize)`,
    required: true,
    gate: noController,
    run: refusedJoin,
  },
];
