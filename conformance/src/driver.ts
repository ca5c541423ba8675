/**
 * The dataplane driver seam: the section-A checks that make sense on any dataplane are written once
 * here (`DATAPLANE_CHECKS`), as a rule judged over what a driver observes, and run on either
 * driver:
 *
 *  - the simulator (`simDataplane`, over the suite's shared fixture: packets walked by @cnikit/sim);
 *  - the real kernel (@cnikit/lab's driver: a lab of network namespaces, real TCP/UDP/ping probes,
 *    interfaces read with `ip`), which this package never imports (the lab depends on it).
 *
 * A driver observes; the check judges. A driver answers with facts (who reached whom and why not,
 * which source address the receiver saw, interface and tunnel MTUs, which addresses are reserved)
 * and describes its endpoints ("pod default/p (10.0.0.5) on node n1"); the rule, which pairs it
 * covers and the failure reasons live in the check, once.
 */
import fc from "fast-check";
import { ENCAP_OVERHEAD, Prefix } from "@cnikit/core";
import type { NetworkSummary } from "@cnikit/core";
import type { Endpoint, SimPod } from "@cnikit/sim";
import { SOURCES, fail, notApplicable, notRun, pass } from "./check.ts";
import type { CheckDefinition, CheckEnv } from "./check.ts";
import { describeEndpoint, describePacket, describePod, livePods, nodeEndpoint, podEndpoint, summarizeProblems } from "./harness.ts";
import type { Harness, IpamProblem, IpamProblemKind } from "./harness.ts";
import type { CheckOutcome, Section } from "./types.ts";

/** An endpoint as a driver shows it: a pod, a node's host network namespace, or an external host. */
export interface DpEndpoint {
  kind: "pod" | "node" | "external";
  /** Unique among the driver's endpoints of that kind (a pod's key in the simulator, its name in a lab). */
  id: string;
  /** The node a pod lives on (a node: itself). */
  node?: string;
  /** A pod's own addresses; a node's or external host's address. */
  addresses: string[];
  /** How reasons name it: "pod default/p (10.0.0.5) on node n1", "node n1 (192.0.2.10)". */
  label: string;
}

/** One pair that did not reach, and why (the driver's words: a drop with its place, a timeout, ...). */
export interface ReachFailure {
  from: DpEndpoint;
  to: DpEndpoint;
  why: string;
}

/** One packet (or probe) from a pod to an external host. */
export interface EgressDelivery {
  /** Protocol, when the driver probes several. */
  proto?: string;
  /** It arrived (for a round-trip probe: the answer came back). */
  delivered: boolean;
  /** The source address the receiver saw. */
  seenSource?: string;
  /** Whether the reply made it back, when the driver walks it separately. */
  replyDelivered?: boolean;
  /** Why it did not arrive. */
  why: string;
}

/** A pod pair whose receiver saw another source address than the sender's own. */
export interface NattedPair {
  from: DpEndpoint;
  to: DpEndpoint;
  proto?: string;
  seen: string;
}

/** MTUs of one node: its underlay, its tunnel links and its pods' interfaces. */
export interface NodeMtus {
  node: string;
  underlayMtu: number;
  links: { kind: string; name: string; mtu?: number }[];
  pods: { label: string; mtu: number }[];
}

/**
 * What a dataplane shows the section-A checks. Every method observes; none judges. The endpoints
 * are the driver's fixture: a settled cluster with pods on every node, which checks must not change.
 */
export interface ModelDataplane {
  /** "simulator" or "linux" (reasons may say which). */
  readonly name: string;
  /**
   * Whether a packet that arrives but whose reply cannot come back is still seen as delivered (the
   * simulator walks one-way packets; a kernel probe is a round trip, so a pod → external packet
   * without NAT shows as not delivered: nothing routes the answer back to a pod address).
   */
  readonly seesOneWay: boolean;
  pods(): DpEndpoint[];
  nodes(): DpEndpoint[];
  externals(): DpEndpoint[];
  /** The address of a node on the underlay (the source a masqueraded packet must carry). */
  nodeAddress(node: string): string | undefined;
  /** Every pair of `from` × `to` (the same endpoint skipped) that did not reach, by any protocol the driver uses. */
  reachFailures(from: DpEndpoint[], to: DpEndpoint[]): Promise<ReachFailure[]>;
  /** Pod → pod pairs among `pods`: how many, how many delivered, and those that arrived NATed (up to `max` examples). */
  podSources(pods: DpEndpoint[], max: number): Promise<{ pairs: number; delivered: number; nattedPairs: number; examples: NattedPair[] }>;
  /** What `pod` → `external` packets showed. */
  egress(pod: DpEndpoint, external: DpEndpoint): Promise<EgressDelivery[]>;
  /**
   * Adds to `reserved` (which holds the pod ranges' network and broadcast addresses) the addresses
   * no pod may hold, with why: addresses on the nodes' host side, pods' gateways, the network and
   * broadcast addresses of pods' interface prefixes (`reservePodInterface`).
   */
  reserveAddresses(reserved: Map<string, string>): Promise<void>;
  /** Underlay, tunnel and pod interface MTUs, per node. */
  mtus(): Promise<NodeMtus[]>;
  /** Why a packet of `from`'s interface MTU does not reach `to` whole (undefined: it does). */
  fullSizeProblem(from: DpEndpoint, to: DpEndpoint): Promise<string | undefined>;
}

/** A section-A check written once: the rule judged over any `ModelDataplane`. */
export interface DataplaneCheck {
  id: string;
  section: Section;
  rule: string;
  source: string;
  required: boolean;
  judge(dp: ModelDataplane, summary: NetworkSummary): Promise<CheckOutcome>;
}

/** Encapsulation overhead of one encapsulation name (none = 0; wireguard over IPv4 = 60). */
export function overheadOf(encap: string): number {
  if (encap === "vxlan") return ENCAP_OVERHEAD.vxlan;
  if (encap === "ipip") return ENCAP_OVERHEAD.ipip;
  if (encap === "sleeve") return ENCAP_OVERHEAD.sleeve;
  if (encap === "wireguard") return 60;
  return 0;
}

/**
 * The section-A address rules over `pods`: an address each, inside a pod range, not reserved,
 * held by one live pod only. One implementation for every driver (the driver says what is reserved).
 */
export function addressProblems(pods: DpEndpoint[], podRanges: string[], reserved: Map<string, string>): IpamProblem[] {
  const problems: IpamProblem[] = [];
  const ranges = podRanges.map((r) => Prefix.parse(r));
  const owner = new Map<string, DpEndpoint>();
  for (const pod of pods) {
    if (pod.addresses.length === 0) problems.push({ kind: "missing", text: `${pod.label} has no address` });
    for (const addr of pod.addresses) {
      if (!ranges.some((r) => r.contains(addr))) problems.push({ kind: "range", text: `${pod.label}: ${addr} is outside the pod range(s) ${podRanges.join(", ")}` });
      const why = reserved.get(addr);
      if (why) problems.push({ kind: "reserved", text: `${pod.label}: ${addr} is reserved (${why})` });
      const other = owner.get(addr);
      if (other) problems.push({ kind: "duplicate", text: `${addr} is held by two live pods: ${other.label} and ${pod.label}` });
      else owner.set(addr, pod);
    }
  }
  return problems;
}

/** The network and broadcast addresses of the pod ranges (the part of the reserved set every driver shares). */
export function rangeReserved(podRanges: string[]): Map<string, string> {
  const reserved = new Map<string, string>();
  for (const r of podRanges.map((x) => Prefix.parse(x))) {
    reserved.set(r.network, `the network address of pod range ${r.toString()}`);
    if (r.family === 4) reserved.set(r.broadcast, `the broadcast address of pod range ${r.toString()}`);
  }
  return reserved;
}

/**
 * Adds a pod interface's reserved addresses: its gateways, and the network and broadcast address of
 * its interface prefix (IPv4, /30 or shorter).
 */
export function reservePodInterface(reserved: Map<string, string>, node: string, cidrs: readonly string[], gateways: readonly string[]): void {
  for (const g of gateways) if (!reserved.has(g)) reserved.set(g, `the gateway of pods on node ${node}`);
  for (const cidr of cidrs) {
    const pref = Prefix.parse(cidr, { allowHostBits: true });
    if (pref.family === 4 && pref.length <= 30) {
      reserved.set(pref.network, `the network address of ${pref.toString()}, the interface prefix of pods on node ${node}`);
      reserved.set(pref.broadcast, `the broadcast address of ${pref.toString()}, the interface prefix of pods on node ${node}`);
    }
  }
}

function ipamCheck(id: string, kinds: IpamProblemKind[], rule: string): DataplaneCheck {
  return {
    id,
    section: "A",
    rule,
    source: SOURCES.k8sIpam,
    required: true,
    async judge(dp, summary) {
      const reserved = rangeReserved(summary.podRanges);
      await dp.reserveAddresses(reserved);
      const problems = addressProblems(dp.pods(), summary.podRanges, reserved).filter((p) => kinds.includes(p.kind));
      return problems.length > 0 ? fail(summarizeProblems(problems.map((p) => p.text))) : pass();
    },
  };
}

function reachCheck(id: string, rule: string, pick: (dp: ModelDataplane) => { from: DpEndpoint[]; to: DpEndpoint[]; keep?: (a: DpEndpoint, b: DpEndpoint) => boolean }): DataplaneCheck {
  return {
    id,
    section: "A",
    rule,
    source: SOURCES.k8sModel,
    required: true,
    async judge(dp) {
      const { from, to, keep } = pick(dp);
      const problems = (await dp.reachFailures(from, to)).filter((f) => !keep || keep(f.from, f.to)).map((f) => `${f.from.label} -> ${f.to.label}: ${f.why}`);
      return problems.length > 0 ? fail(summarizeProblems(problems)) : pass();
    },
  };
}

/** Section A's dataplane checks, in the suite's order (ipam.concurrent-unique, which makes pods of its own, sits between the address and reachability checks). */
export const DATAPLANE_CHECKS: readonly DataplaneCheck[] = Object.freeze([
  ipamCheck("ipam.in-range", ["missing", "range"], "Every pod gets an address inside the configured pod range(s)."),
  ipamCheck("ipam.unique", ["duplicate"], "No two live pods hold the same address, on one node or across nodes."),
  ipamCheck("ipam.reserved", ["reserved"], "No pod gets a reserved address (network, broadcast, gateway, a node's own)."),
  reachCheck("reach.pod-to-pod.same-node", "Every pod reaches every other pod on the same node.", (dp) => ({ from: dp.pods(), to: dp.pods(), keep: (a, b) => a.node === b.node })),
  reachCheck("reach.pod-to-pod.cross-node", "Every pod reaches every pod on every other node.", (dp) => ({ from: dp.pods(), to: dp.pods(), keep: (a, b) => a.node !== b.node })),
  {
    id: "reach.no-nat-between-pods",
    section: "A",
    rule: "A pod receiving from another pod sees the sender's own pod address (no NAT between pods).",
    source: SOURCES.k8sModel,
    required: true,
    async judge(dp) {
      const s = await dp.podSources(dp.pods(), 3);
      if (s.nattedPairs === 0) {
        // Nothing delivered proves nothing about NAT (the reach checks say why nothing arrived).
        return s.pairs > 0 && s.delivered === 0 ? notApplicable(`none of the ${s.pairs} pod pairs delivered a packet, so no receiver saw a source address`) : pass();
      }
      const named = s.examples
        .slice(0, 3)
        .map((x) => `${x.from.label} -> ${x.to.label}${x.proto ? ` by ${x.proto}` : ""}: the receiver saw source ${x.seen} instead of ${x.from.addresses.join(", ")}`);
      return fail(`${s.nattedPairs} of ${s.pairs} pod pairs arrive NATed: ${named.join("; ")}`);
    },
  },
  reachCheck("reach.node-to-pod", "Every node (its host network namespace) reaches every pod.", (dp) => ({ from: dp.nodes(), to: dp.pods() })),
  reachCheck("reach.pod-to-node", "Every pod reaches every node's host address.", (dp) => ({ from: dp.pods(), to: dp.nodes() })),
  {
    id: "nat.outgoing",
    section: "A",
    rule: "Pod traffic to an address outside every pod range is masqueraded to the node's address exactly when the config says so.",
    source: `${SOURCES.k8sModel}; the backend's NetworkSummary.natOutgoing`,
    required: true,
    async judge(dp, summary) {
      const external = dp.externals()[0];
      if (!external) return notRun(`the ${dp.name === "simulator" ? "simulated topology" : `${dp.name} topology`} has no external host to send to`);
      const problems: string[] = [];
      const perNode = new Map<string, DpEndpoint>();
      for (const p of dp.pods()) if (p.node !== undefined && !perNode.has(p.node)) perNode.set(p.node, p);
      for (const pod of perNode.values()) {
        const nodeAddr = dp.nodeAddress(pod.node!);
        for (const r of await dp.egress(pod, external)) {
          const by = r.proto ? ` by ${r.proto}` : "";
          if (!r.delivered) {
            // A round trip without NAT has no way back to a pod address: expected, not a fault.
            if (summary.natOutgoing || dp.seesOneWay) problems.push(`${pod.label} -> ${external.id} (${external.addresses[0] ?? "?"})${by}: ${r.why}`);
            continue;
          }
          if (summary.natOutgoing) {
            if (r.seenSource !== nodeAddr) {
              problems.push(`${pod.label} -> ${external.id}${by}: natOutgoing is on, but the receiver saw source ${r.seenSource ?? "?"} instead of node address ${nodeAddr ?? "?"}`);
            } else if (r.replyDelivered === false) {
              problems.push(`${pod.label} -> ${external.id}${by}: masqueraded, but the reply did not make it back (NAT not reversed?)`);
            }
          } else if (r.seenSource !== undefined && !pod.addresses.includes(r.seenSource)) {
            problems.push(`${pod.label} -> ${external.id}${by}: natOutgoing is off, but the receiver saw source ${r.seenSource}`);
          }
        }
      }
      return problems.length > 0 ? fail(summarizeProblems(problems)) : pass();
    },
  },
  {
    id: "mtu.encap-headroom",
    section: "A",
    rule: "Pod interface MTUs (and tunnel MTUs) leave room for the backend's encapsulation on the underlay MTU.",
    source: SOURCES.mtu,
    required: true,
    async judge(dp, summary) {
      const overhead = Math.max(0, ...summary.encapsulations.map(overheadOf));
      const problems: string[] = [];
      for (const n of await dp.mtus()) {
        const mtu = n.underlayMtu;
        for (const pod of n.pods) {
          if (!(pod.mtu > 0) || pod.mtu > mtu - overhead) {
            problems.push(
              `${pod.label} has MTU ${pod.mtu}; the underlay MTU is ${mtu} and the encapsulation (${summary.encapsulations.join(", ")}) needs ${overhead} bytes, so at most ${mtu - overhead}`,
            );
          }
        }
        for (const link of n.links) {
          if (link.mtu === undefined) continue;
          const o = link.kind === "vxlan" || link.kind === "ipip" || link.kind === "sleeve" ? overheadOf(link.kind) : 0;
          if (o > 0 && link.mtu > mtu - o) problems.push(`${link.kind} link ${link.name} on node ${n.node} has MTU ${link.mtu}; at most ${mtu - o} fits the underlay MTU ${mtu}`);
        }
      }
      // And a full-size packet from each pod fits the path to a pod on another node.
      const pods = dp.pods();
      for (const a of pods) {
        const b = pods.find((p) => p.node !== a.node);
        if (!b) break;
        const problem = await dp.fullSizeProblem(a, b);
        if (problem) problems.push(`${a.label} -> ${b.label}: ${problem}`);
      }
      return problems.length > 0 ? fail(summarizeProblems(problems)) : pass();
    },
  },
]);

// ---- concurrent ADDs and DELs ------------------------------------------------------------------

/**
 * A cluster a check may add pods to and remove its own pods from, concurrently: the simulator gives
 * a fresh one per schedule; the kernel's lab gives itself (its base pods stay, and count for the
 * address rules, but are never removed).
 */
export interface ChurnCluster {
  /** Node names, in order. */
  nodes: string[];
  /** The pods this cluster's operations made and may remove, in creation order. */
  removable(): DpEndpoint[];
  /** Starts one ADD per entry of `adds` (a node name) and one DEL per victim, all at once; resolves with each one's outcome, in that order. */
  wave(adds: string[], victims: DpEndpoint[]): Promise<({ ok: true } | { ok: false; code?: unknown; message: string })[]>;
  /** Every live pod (the address rules cover them all). */
  pods(): Promise<DpEndpoint[]>;
  /** As `ModelDataplane.reserveAddresses`, for this cluster. */
  reserveAddresses(reserved: Map<string, string>): Promise<void>;
  /** Removes what the cluster's operations left (the simulator: the whole cluster). Never throws. */
  close(): Promise<void>;
}

/** Opens a `ChurnCluster` per schedule (`salt` names the schedule: the simulator seeds its cluster with it). */
export interface ChurnDriver {
  readonly name: string;
  open(salt: string): Promise<ChurnCluster>;
}

/** One random schedule of concurrent ADDs and DELs across nodes. */
export interface Wave {
  adds: number[];
  dels: number[];
}

const waveArb = fc.record({
  adds: fc.array(fc.nat({ max: 2 }), { minLength: 1, maxLength: 6 }),
  dels: fc.array(fc.nat({ max: 1000 }), { maxLength: 3 }),
});

async function runSchedule(driver: ChurnDriver, summary: NetworkSummary, waves: Wave[], run: number): Promise<string | undefined> {
  const c = await driver.open(`ipam.concurrent-unique#${run}`);
  try {
    for (const [w, wave] of waves.entries()) {
      const live = c.removable();
      const victims = [...new Set(wave.dels.map((d) => (live.length === 0 ? -1 : d % live.length)))].filter((i) => i >= 0).map((i) => live[i]!);
      const settled = await c.wave(
        wave.adds.map((n) => c.nodes[n % c.nodes.length]!),
        victims,
      );
      const rejected = settled.find((s): s is { ok: false; code?: unknown; message: string } => !s.ok);
      // Exhaustion and "try again" are legitimate answers under load; anything else is not.
      if (rejected && rejected.code !== 100 && rejected.code !== 11) return `wave ${w}: an operation failed: ${rejected.message}`;
      const reserved = rangeReserved(summary.podRanges);
      await c.reserveAddresses(reserved);
      const problems = addressProblems(await c.pods(), summary.podRanges, reserved);
      if (problems.length > 0)
        return `after wave ${w} (${wave.adds.length} concurrent ADDs, ${victims.length} DELs): ${summarizeProblems(
          problems.map((p) => p.text),
          2,
        )}`;
    }
    return undefined;
  } finally {
    await c.close();
  }
}

/** ipam.concurrent-unique, written once: random schedules of waves, judged after every wave. */
export const CONCURRENT_IPAM_CHECK = Object.freeze({
  id: "ipam.concurrent-unique",
  section: "A" as Section,
  rule: "Under concurrent ADDs and DELs on many nodes (random schedules) addresses stay unique, in range and unreserved.",
  source: SOURCES.k8sIpam,
  required: true,
  budgetMs: 240_000,
  /** Runs `runs` schedules (seeded by `seed`) on `driver`; stops at the first that breaks a rule. */
  async judge(driver: ChurnDriver, ctx: { summary: NetworkSummary; seed: number; runs: number }): Promise<CheckOutcome> {
    let schedules = 0;
    const started = performance.now();
    const result = await fc.check(
      fc.asyncProperty(fc.array(waveArb, { minLength: 1, maxLength: 5 }), async (waves) => {
        const problem = await runSchedule(driver, ctx.summary, waves, schedules++);
        if (problem) throw new Error(problem);
      }),
      { seed: ctx.seed, numRuns: ctx.runs, endOnFailure: true },
    );
    const metrics = { wallMs: Math.round(performance.now() - started) };
    if (result.failed) {
      const why = result.errorInstance instanceof Error ? result.errorInstance.message : String(result.errorInstance);
      return fail(`schedule ${result.numRuns} of ${ctx.runs} (seed ${ctx.seed}): ${why}`, { metrics });
    }
    return pass({ metrics });
  },
});

/** The simulator's churn: a fresh 3-node cluster per schedule (pods `q0`, `q1`, ...), driven on its virtual clock. */
export function simChurnDriver(env: Pick<CheckEnv, "harness">): ChurnDriver {
  return {
    name: "simulator",
    async open(salt) {
      const h = env.harness(salt);
      let ready = false;
      try {
        const nodes = (await h.cluster.addNodes(3)).map((n) => n.name);
        ready = true;
        let serial = 0;
        const ep = (p: SimPod): DpEndpoint => ({ kind: "pod", id: p.key, node: p.node, addresses: [...p.addresses], label: describePod(p) });
        const byKey = (id: string): SimPod => h.cluster.pods().find((p) => p.key === id)!;
        return {
          nodes,
          removable: () => h.cluster.pods().map(ep),
          async wave(adds, victims) {
            const ops: Promise<unknown>[] = [...adds.map((node) => h.sim.addPod(node, { name: `q${serial++}` })), ...victims.map((v) => h.sim.removePod(byKey(v.id)))];
            const settled = await h.drive(Promise.allSettled(ops));
            return settled.map((s) => {
              if (s.status === "fulfilled") return { ok: true as const };
              const err = s.reason as { code?: unknown; message?: unknown };
              return { ok: false as const, code: err?.code, message: String(err?.message ?? err) };
            });
          },
          pods: async () => livePods(h).map(ep),
          reserveAddresses: async (reserved) => reserveSimAddresses(h, reserved),
          close: () => h.cluster.close().catch(() => undefined),
        };
      } finally {
        if (!ready) await h.cluster.close().catch(() => undefined);
      }
    },
  };
}

/** ipam.concurrent-unique on the simulator. */
export function concurrentIpamOnSimulator(): CheckDefinition {
  const c = CONCURRENT_IPAM_CHECK;
  return {
    id: c.id,
    section: c.section,
    rule: c.rule,
    source: c.source,
    required: c.required,
    budgetMs: c.budgetMs,
    run: (env) => c.judge(simChurnDriver(env), { summary: env.summary, seed: env.seed, runs: env.propertyRuns }),
  };
}

/** The simulator's reserved addresses: host-side addresses of live nodes, pod gateways and interface prefixes. */
function reserveSimAddresses(h: Harness, reserved: Map<string, string>): void {
  for (const node of h.cluster.nodes()) {
    if (!node.alive) continue;
    const dp = h.cluster.dataplane(node.name);
    for (const a of dp.addresses) reserved.set(a.cidr.split("/")[0]!, `an address of ${a.dev} on node ${node.name}`);
    for (const p of dp.pods) reservePodInterface(reserved, node.name, p.addresses, p.gateways ?? []);
  }
}

// ---- the simulator's driver ----------------------------------------------------------------------

function underlayMtu(h: Harness, node: string): number {
  const info = h.cluster.node(node).info;
  const u = info.underlay[0];
  if (u?.mtu !== undefined) return u.mtu;
  const subnet = h.cluster.topology.subnets.find((s) => u && Prefix.parse(s.cidr).contains(u.address));
  return subnet?.mtu ?? 1500;
}

/** The simulator's view of a settled cluster and its pods (the suite's shared fixture). */
export function simDataplane(h: Harness, fixturePods: SimPod[]): ModelDataplane {
  const refs = new Map<string, Endpoint>();
  const keyOf = (e: Endpoint): string => (e.kind === "pod" ? `pod:${e.key}` : `${e.kind}:${e.name}`);
  const ep = (kind: DpEndpoint["kind"], id: string, ref: Endpoint, init: Omit<DpEndpoint, "kind" | "id">): DpEndpoint => {
    refs.set(`${kind}:${id}`, ref);
    return { kind, id, ...init };
  };
  const podEp = (p: SimPod): DpEndpoint => ep("pod", p.key, podEndpoint(p), { node: p.node, addresses: [...p.addresses], label: describePod(p) });
  const pods = fixturePods.map(podEp);
  const nodes = h.cluster.nodes().map((n) => {
    const address = n.info.underlay[0]?.address;
    return ep("node", n.name, nodeEndpoint(n.name), { node: n.name, addresses: address ? [address] : [], label: describeEndpoint(h, nodeEndpoint(n.name)) });
  });
  const externals = (h.cluster.topology.externals ?? []).map((e) => ep("external", e.name, { kind: "external", name: e.name }, { addresses: [e.address], label: `external host ${e.name}` }));
  const ref = (e: DpEndpoint): Endpoint => refs.get(`${e.kind}:${e.id}`)!;
  const same = (a: DpEndpoint, b: DpEndpoint): boolean => a.kind === b.kind && a.id === b.id;
  return {
    name: "simulator",
    seesOneWay: true,
    pods: () => pods,
    nodes: () => nodes,
    externals: () => externals,
    nodeAddress: (node) => h.cluster.node(node).info.underlay[0]?.address,
    async reachFailures(from, to) {
      if (from.length === 0 || to.length === 0) return [];
      const byRef = new Map<string, DpEndpoint>();
      for (const e of [...from, ...to]) byRef.set(keyOf(ref(e)), e);
      // One pass per address family of the listed pods (IPv6 of a dual-stack pod is probed too).
      const families = [
        ...new Set([...from, ...to].flatMap((e) => (e.kind === "pod" ? e.addresses.filter((a) => !/^fe[89ab]/i.test(a) && !a.startsWith("169.254.")).map((a) => (a.includes(":") ? 6 : 4)) : []))),
      ].sort();
      const out: ReachFailure[] = [];
      for (const family of families.length > 0 ? families : [undefined]) {
        const report = h.cluster.reachability({ from: from.map(ref), to: to.map(ref), maxFailures: 10_000, ...(family !== undefined ? { family } : {}) });
        const at = (r: { destination: string }): string => (families.length > 1 ? `IPv${family} to ${r.destination || "no address"}: ` : "");
        for (const s of report.skipped) {
          const e = byRef.get(keyOf(s.endpoint));
          if (e?.kind === "pod") out.push({ from: e, to: e, why: `not probed in IPv${family}: ${s.reason}, unlike the other pods` });
        }
        for (const f of report.failures) {
          const a = byRef.get(keyOf(f.from));
          const b = byRef.get(keyOf(f.to));
          if (!a || !b || same(a, b)) continue;
          out.push({ from: a, to: b, why: `${at(f.result)}${describePacket(f.result)}` });
        }
      }
      return out;
    },
    async podSources(list, max) {
      const eps = list.map(ref);
      const all = h.cluster.reachability({ from: eps, to: eps, maxFailures: 0 });
      const examples: NattedPair[] = [];
      if (all.natted > 0) {
        // Name a few of the NATed pairs, walking packets until enough are found.
        for (const a of list) {
          for (const b of list) {
            if (same(a, b) || examples.length >= max) continue;
            const r = h.cluster.send(ref(a), ref(b), { protocol: "tcp", port: 80 });
            if (r.delivered && r.seenSource !== undefined && !a.addresses.includes(r.seenSource)) examples.push({ from: a, to: b, seen: r.seenSource });
          }
        }
      }
      return { pairs: all.pairs, delivered: all.delivered, nattedPairs: all.natted, examples };
    },
    async egress(pod, external) {
      const r = h.cluster.send(ref(pod), ref(external), { protocol: "tcp", port: 443 });
      const out: EgressDelivery = { delivered: r.delivered, why: describePacket(r) };
      if (r.seenSource !== undefined) out.seenSource = r.seenSource;
      if (r.replyDelivered !== undefined) out.replyDelivered = r.replyDelivered;
      return [out];
    },
    async reserveAddresses(reserved) {
      reserveSimAddresses(h, reserved);
    },
    async mtus() {
      return h.cluster.nodes().map((node) => {
        const dp = h.cluster.dataplane(node.name);
        return {
          node: node.name,
          underlayMtu: underlayMtu(h, node.name),
          links: dp.links.map((l) => ({ kind: l.kind, name: l.name, ...(l.mtu !== undefined ? { mtu: l.mtu } : {}) })),
          pods: dp.pods.map((pod) => {
            const known = h.cluster.pods().find((p) => p.key === pod.key);
            return { label: known ? describePod(known) : `pod ${pod.key} on node ${node.name}`, mtu: pod.mtu };
          }),
        };
      });
    },
    async fullSizeProblem(from, to) {
      return h.cluster.send(ref(from), ref(to), { protocol: "udp", port: 53 }).mtuProblem;
    },
  };
}

/** The simulator's view of a check's shared fixture. */
export async function simFixtureDataplane(env: Pick<CheckEnv, "fixture">): Promise<ModelDataplane> {
  const { h, pods } = await env.fixture();
  return simDataplane(h, pods);
}
