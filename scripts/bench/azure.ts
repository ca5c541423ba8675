// The Azure-like backend (@cnikit/azure) in the simulator: the figures of issue 16's closing note.
//
//  1. Burst: one node (maxPods 250), `--pods` (200) CNI ADDs started at once through the agent, per
//     mode — classic, dynamic v2 (ours: demand-driven, one step), dynamic v1 (Azure's reactive
//     monitor, `poolMonitor: v1`, one batch per round trip), static-block, overlay — beside the
//     yardstick run in the same process: the reference backend's burst (a local bridge and
//     host-local IPAM, nothing to wait for). Per mode: wall and virtual time until the last ADD
//     returned, pods/s (wall), ratio to the yardstick, and the round trips it took: changes of the
//     node's requestedIPCount, NNC spec writes (node → controller; they also carry the demand),
//     status writes (controller → node) and controller reconciles.
//  2. Churn: `--nodes` (100) nodes, each node's pod count a seeded random walk (0..40 pods, ±10 per
//     step), `--steps` (5) steps — 20 take ~10 minutes: a dynamic step at 100 nodes costs 5-10 s of
//     wall time, mostly the controller's reconciles and the agents' policy re-plans. A step: its
//     DELs, then its ADDs, all nodes at once, then `SETTLE_MS` of virtual time for monitors and
//     controller. After each step, per node:
//     idle = addresses assigned to it (its NNC status) − pods on it. Modes: classic (maxPods 40, the
//     walk of the first `--classic-nodes` nodes, default min(nodes, 40); two node subnets big
//     enough for them: /20), dynamic Azure-like (v1
//     monitor, reclaimIdle false) and ours (v2 + reclaimIdle), both on a roomy pod subnet (room
//     for 40 pods + 24 idle on every node: never exhausted). Scarcity variant, dynamic only: the
//     same walk scaled down so that its peak plus one spare address per node (what the collapsed
//     scaler keeps) just fits a pod subnet one size below the one the raw walk would need; ADD
//     failures counted by error name (PoolExhaustedError = "No available addresses"), and how long
//     ADDs waited (virtual).
//  3. Controller reconcile latency over the churn (every reconcile, virtual and wall ms: count,
//     p50/p95/max), and the cost of one more node joining the churned cluster (wall ms of the
//     whole join, and of the controller's reconciles during it).
//
// How the controller is observed (nothing in packages/azure/src is changed for it): the cluster
// store is a CountingDatastore that also counts NNC spec and status writes; the controller is the
// real `AzureController`, built on a context whose membership notes each `list()` — every
// reconcile starts with one, when `report()` already holds the previous reconcile's latency. In
// the churn the controller's fabric routes stay in a `FabricTable` (`routeTableOnly`): the
// simulator's port recompiles its packet fabric on every route change. A scenario in which the
// controller and the agents answer each other forever at one virtual instant (the exhausted flag
// flipping) is given up and shown as such (`guardInstant`) instead of hanging the run.
//
// Wall-clock figures from performance.now() on this machine; nothing here asserts a speed. The
// script checks what it measures (every burst ADD got its own address, no reconcile went unseen)
// and throws when a figure would be wrong.
// Run alone:  npx tsx --conditions=source scripts/bench/azure.ts [--quick] [--nodes N] [--steps N] [--pods N] [--seed N] [--classic-nodes N]
//             (--quick = --nodes 10 --steps 5 --pods 50; --classic-nodes defaults to min(nodes, 40), see `AzureBenchOptions`)
// In `pnpm bench azure` the flags come from AZURE_BENCH_ARGS (default: the full run, ~3 minutes).
// AZURE_BENCH_DEBUG=1 prints each churn step's virtual and wall time on stderr.
import { ConfigError, FabricTable, MemoryDatastore, Prefix, VirtualClock, seededRandom } from "@cnikit/core";
import type { Backend, ControllerContext, FabricPort, Membership, PutOptions, WriteResult } from "@cnikit/core";
import { SimCluster } from "@cnikit/sim";
import type { SimPod, SimTopology } from "@cnikit/sim";
import { azure, decodeNncSpec, parseAzureConfig, parseNncKey, requiredAddresses, smallestFittingPrefix, usableForLength } from "@cnikit/azure";
import type { AzureConfig } from "@cnikit/azure";
import { parseReferenceConfig, reference } from "@cnikit/reference";
import { AzureController } from "../../packages/azure/src/controller.ts";
import { CountingDatastore, drive } from "../../conformance/src/harness.ts";
import { formatTable, percentile, runIfMain, type Figure } from "./figures.ts";

const COMPONENT = "bench azure";
/** Virtual time after each churn step (v1 ticks every 1 s; the controller's resync is 30 s). */
const SETTLE_MS = 10_000;
/** Virtual time a fresh cluster gets before it is measured (first requests answered, programmed). */
const WARM_MS = 5_000;
/** Burst node: maxPods 250 (AKS's maximum) so that 200 pods fit in every mode. */
const BURST_MAX_PODS = 250;
/** Churn: each node's pods walk between 0 and this, moving at most `WALK_STEP` per step. */
const WALK_MAX = 40;
const WALK_STEP = 10;
/** Churn classic: maxPods = the walk's ceiling (the least a Node Subnet pool could be given). */
const CHURN_MAX_PODS = WALK_MAX;
/** Dynamic pool's largest idle share with Azure's defaults (maxFree = 16 × 150 %): sizes the roomy subnet. */
const MAX_IDLE = 24;
const NODE_SUBNETS = "10.0.0.0/12";
const POD_SUBNET_BASE = "10.241.0.0";
const BLOCK_SUBNET = "10.242.0.0/16";
const POD_CIDR = "10.244.0.0/16";

export interface AzureBenchOptions {
  /** Churn cluster size (default 100). */
  nodes: number;
  /** Churn steps (default 5). */
  steps: number;
  /** Burst size (default 200). */
  pods: number;
  /** Seed of the walk and the simulator (default 1). */
  seed: number;
  /**
   * Classic churn cluster size (default min(nodes, 40)): building a classic cluster costs about
   * nodes² × maxPods membership deliveries in the simulator (~3 minutes at 100 nodes), and a classic
   * node's idle count (maxPods − pods) does not depend on the cluster size.
   */
  classicNodes: number;
}

/** The classic churn's default size cap (see `AzureBenchOptions.classicNodes`). */
const CLASSIC_NODES = 40;
export const AZURE_BENCH_DEFAULTS: Readonly<AzureBenchOptions> = Object.freeze({ nodes: 100, steps: 5, pods: 200, seed: 1, classicNodes: CLASSIC_NODES });
const QUICK: Readonly<AzureBenchOptions> = Object.freeze({ nodes: 10, steps: 5, pods: 50, seed: 1, classicNodes: 10 });

const LIMITS: Record<keyof AzureBenchOptions, { min: number; max: number }> = {
  nodes: { min: 2, max: 250 },
  steps: { min: 1, max: 1000 },
  pods: { min: 1, max: BURST_MAX_PODS },
  seed: { min: 0, max: 2 ** 31 - 1 },
  classicNodes: { min: 2, max: 250 },
};

const flagOf = (name: string): string => `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/** Parses the flags (see the file comment); throws `ConfigError` naming the flag and the rule. */
export function parseAzureBenchArgs(argv: readonly string[]): AzureBenchOptions {
  const out: AzureBenchOptions = argv.includes("--quick") ? { ...QUICK } : { ...AZURE_BENCH_DEFAULTS };
  let classicGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === "--quick") continue;
    const name = (Object.keys(LIMITS) as (keyof AzureBenchOptions)[]).find((k) => flagOf(k) === flag);
    if (name === undefined) {
      throw new ConfigError({
        component: COMPONENT,
        field: flag,
        rule: `unknown argument; known: --quick, ${Object.keys(LIMITS)
          .map((k) => `${flagOf(k)} N`)
          .join(", ")}`,
      });
    }
    if (name === "classicNodes") classicGiven = true;
    const raw = argv[++i];
    const value = Number(raw);
    const { min, max } = LIMITS[name];
    if (raw === undefined || !Number.isInteger(value) || value < min || value > max) {
      throw new ConfigError({ component: COMPONENT, field: flag, rule: `must be followed by an integer from ${min} to ${max}`, value: raw });
    }
    out[name] = value;
  }
  if (!classicGiven) out.classicNodes = Math.min(out.nodes, out.classicNodes);
  return out;
}

// ---- the cluster -------------------------------------------------------------------------------

/** Two node subnets of `NODE_SUBNETS` of prefix length `length` ("a", "b"), a router, the internet. */
function underlay(length: number): SimTopology {
  const blocks = Prefix.parse(NODE_SUBNETS).subnets(length);
  const subnets = [blocks.next().value, blocks.next().value].map((p, i) => ({ name: i === 0 ? "a" : "b", cidr: p.toString(), gateway: p.nth(1), mtu: 1500 }));
  return {
    subnets: [...subnets, { name: "ext", cidr: "192.0.2.0/24", gateway: "192.0.2.1", mtu: 1500 }],
    routers: [{ name: "r1", interfaces: [...subnets.map((s) => ({ subnet: s.name, address: s.gateway })), { subnet: "ext", address: "192.0.2.1" }] }],
    externals: [{ name: "internet", address: "192.0.2.200", subnet: "ext" }],
  };
}

/** Node subnets for `nodes` classic nodes of `maxPods` (plus one joining later and AKS's surge of 1), at least /20. */
function nodeSubnetLength(nodes: number, maxPods: number): number {
  const perSubnet = Math.ceil(nodes / 2) + 1;
  return Math.min(20, smallestFittingPrefix({ required: requiredAddresses({ nodes: perSubnet, maxPods, surge: 1 }) }));
}

/** The cluster store: counts every operation (CountingDatastore) and NNC spec / status writes apart. */
class NncCountingStore extends CountingDatastore {
  specWrites = 0;
  /** Spec writes that changed `requestedIPCount` (a node asking for a new size: one round trip). */
  requestChanges = 0;
  statusWrites = 0;
  private readonly requested = new Map<string, number>();
  override put(key: string, value: string, options?: PutOptions): Promise<WriteResult> {
    const half = parseNncKey(key)?.half;
    if (half === "spec") {
      this.specWrites++;
      const count = decodeNncSpec(value)?.requestedIPCount;
      if (count !== undefined && count !== this.requested.get(key)) this.requestChanges++;
      if (count !== undefined) this.requested.set(key, count);
    } else if (half === "status") this.statusWrites++;
    return super.put(key, value, options);
  }
}

/** Flips of the exhausted flag at one virtual instant after which a scenario is given up (a zero-time loop). */
const FLAP_LIMIT = 50;

/** A scenario given up because the controller and the agents never stopped answering each other. */
class FlapError extends Error {
  override readonly name = "FlapError";
}

/**
 * A fabric port whose routes live in core's `FabricTable` (validated as the simulator's port
 * validates them) and go no further, secondary addresses through `real`. For the churn: the
 * simulator's port re-pushes every route into its packet fabric, which recompiles its routing, on
 * each route change (quadratic in routes: ~40 s of wall time per step at 100 nodes), and the churn
 * measures addresses and reconciles, not packets.
 */
function routeTableOnly(real: FabricPort, members: Membership): FabricPort {
  const table = new FabricTable(members);
  return {
    setRoute: async (route) => void table.setRoute(route),
    deleteRoute: async (dst) => void table.deleteRoute(dst),
    routes: async () => table.routes(),
    addSecondaryAddress: (a) => real.addSecondaryAddress(a),
    removeSecondaryAddress: (a) => real.removeSecondaryAddress(a),
    secondaryAddresses: () => real.secondaryAddresses(),
  };
}

/** One reconcile of the controller. */
interface Reconcile {
  virtualMs: number;
  wallMs: number;
}

/** The azure backend whose controller is watched (see the file comment), on its own clock and store. */
class ObservedAzure {
  readonly clock = new VirtualClock();
  readonly store = new NncCountingStore(new MemoryDatastore({ clock: this.clock }));
  readonly reconciles: Reconcile[] = [];
  readonly backend: Backend<AzureConfig>;
  private controllerRef: AzureController | undefined;
  /** Reconciles whose latency is in `reconciles` (or was before a `reset`). */
  private seen = 0;
  private instant = -1;
  private flips = 0;
  private exhausted = false;
  /** Why the scenario was given up (see `guardInstant`). */
  flapping: string | undefined;

  /** @param routesInMemory fabric routes in a `FabricTable` only (see `routeTableOnly`) */
  constructor(routesInMemory = false) {
    this.backend = {
      ...azure,
      createController: (ctx: ControllerContext<AzureConfig>) => {
        const inner = ctx.members;
        const members: Membership = {
          list: () => {
            // A reconcile starts: report() holds the previous one's latency.
            if (this.controllerRef) this.note(this.controllerRef.report().reconciles - 1);
            this.guardInstant();
            return inner.list();
          },
          get: (name) => inner.get(name),
          onChange: (listener) => inner.onChange(listener),
        };
        const fabric = routesInMemory ? routeTableOnly(ctx.fabric, inner) : ctx.fabric;
        this.controllerRef = new AzureController({ ...ctx, members, fabric });
        return this.controllerRef;
      },
    };
  }

  /**
   * A controller and agents that keep answering each other without virtual time passing never let
   * the clock (or this script) run again. Its signature: the subnet's exhausted flag flipping back
   * and forth at one virtual instant. After `FLAP_LIMIT` flips the scenario is given up —
   * `flapping` says where, and every later reconcile fails here (the controller retries in 1 s of
   * virtual time), which ends the loop so that the cluster can be closed.
   */
  private guardInstant(): void {
    const now = this.clock.now();
    if (now !== this.instant) {
      this.instant = now;
      this.flips = 0;
    }
    const r = this.controller.report();
    const exhausted = r.subnets.some((s) => s.exhausted);
    if (exhausted !== this.exhausted) {
      this.exhausted = exhausted;
      this.flips++;
    }
    if (this.flapping === undefined && this.flips > FLAP_LIMIT) {
      this.flapping = `the subnet's exhausted flag flipped ${this.flips} times at virtual ${now} ms (reconcile ${r.reconciles}; ${r.nodes.reduce((n, x) => n + x.assigned, 0)} addresses assigned now)`;
    }
    if (this.flapping !== undefined) throw new Error(`bench azure: scenario given up: ${this.flapping}`);
  }

  /** Throws when the scenario was given up (see `guardInstant`). */
  check(what: string): void {
    if (this.flapping !== undefined) throw new FlapError(`${what}: ${this.flapping}`);
  }

  get controller(): AzureController {
    if (!this.controllerRef) throw new Error("bench azure: the controller has not been created yet (add a node first)");
    return this.controllerRef;
  }

  /** Records the latency of reconcile number `completed` (report()'s last) if not yet recorded. */
  private note(completed: number): void {
    if (completed <= this.seen) return;
    if (completed > this.seen + 1) throw new Error(`bench azure: reconciles ${this.seen + 1}..${completed - 1} ended unseen (did the controller stop listing members first?)`);
    const r = this.controller.report();
    this.reconciles.push({ virtualMs: r.lastReconcileMs, wallMs: r.lastReconcileWallMs });
    this.seen = completed;
  }

  /** Waits until no reconcile runs and records the last one. */
  async flush(): Promise<void> {
    await this.controller.settled();
    this.check("waiting for the controller");
    this.note(this.controller.report().reconciles);
  }

  /** Forgets the reconciles recorded so far (they still count as seen). */
  async reset(): Promise<void> {
    await this.flush();
    this.reconciles.length = 0;
  }
}

// ---- 1. burst ----------------------------------------------------------------------------------

interface BurstRow {
  label: string;
  wallMs: number;
  virtualMs: number;
  specWrites?: number;
  requestChanges?: number;
  statusWrites?: number;
  reconciles?: number;
}

/** `pods` ADDs at once on a fresh one-node cluster; the node had `WARM_MS` to settle first. */
async function burstOn<C>(o: {
  label: string;
  backend: Backend<C>;
  config: C;
  pods: number;
  seed: number;
  clock: VirtualClock;
  store: MemoryDatastore | NncCountingStore;
  observed?: ObservedAzure;
}): Promise<BurstRow> {
  const { clock } = o;
  const c = SimCluster.create({ backend: o.backend, config: o.config, topology: underlay(20), seed: o.seed, clock, store: o.store });
  try {
    const [node] = await drive(clock, c.addNodes(1), `${o.label}: node start`);
    await clock.advance(WARM_MS);
    const status = node!.agent.status();
    if (!status.ready) throw new Error(`bench azure: ${o.label}: the node is not ready after ${WARM_MS} ms: ${status.reason ?? ""}`);
    await o.observed?.reset();
    const spec0 = o.observed?.store.specWrites ?? 0;
    const request0 = o.observed?.store.requestChanges ?? 0;
    const status0 = o.observed?.store.statusWrites ?? 0;
    const v0 = clock.now();
    let lastDone = v0;
    const w0 = performance.now();
    const adds = Array.from({ length: o.pods }, () =>
      c.addPod(node!.name).then((pod) => {
        lastDone = clock.now();
        return pod;
      }),
    );
    const pods = await drive(clock, Promise.all(adds), `${o.label}: ${o.pods} ADDs`);
    const wallMs = performance.now() - w0;
    const addresses = new Set(pods.map((p) => p.addresses[0]));
    if (addresses.size !== o.pods) throw new Error(`bench azure: ${o.label}: ${o.pods} pods got ${addresses.size} distinct addresses`);
    const row: BurstRow = { label: o.label, wallMs, virtualMs: lastDone - v0 };
    if (o.observed) {
      await o.observed.flush();
      row.specWrites = o.observed.store.specWrites - spec0;
      row.requestChanges = o.observed.store.requestChanges - request0;
      row.statusWrites = o.observed.store.statusWrites - status0;
      row.reconciles = o.observed.reconciles.length;
    }
    return row;
  } finally {
    await c.close();
  }
}

async function burstAzure(label: string, profile: Record<string, unknown>, options: AzureBenchOptions): Promise<BurstRow> {
  const observed = new ObservedAzure();
  const config = parseAzureConfig({ maxPods: BURST_MAX_PODS, ...profile });
  return burstOn({ label, backend: observed.backend, config, pods: options.pods, seed: options.seed, clock: observed.clock, store: observed.store, observed });
}

async function bursts(options: AzureBenchOptions): Promise<{ rows: BurstRow[]; yardstick: BurstRow }> {
  const clock = new VirtualClock();
  const yardstick = await burstOn({
    label: "reference (yardstick: bridge + host-local)",
    backend: reference,
    config: parseReferenceConfig({ network: "10.250.0.0/16", nodeSubnetLength: 24 }),
    pods: options.pods,
    seed: options.seed,
    clock,
    store: new MemoryDatastore({ clock }),
  });
  const podSubnet = `${POD_SUBNET_BASE}/16`;
  const rows = [
    await burstAzure("azure classic", {}, options),
    await burstAzure("azure dynamic v2 (ours)", { podIpAllocationMode: "DynamicIndividual", podSubnet }, options),
    await burstAzure("azure dynamic v1 (Azure's monitor)", { podIpAllocationMode: "DynamicIndividual", podSubnet, poolMonitor: "v1" }, options),
    await burstAzure("azure static-block", { podIpAllocationMode: "StaticBlock", podSubnet: BLOCK_SUBNET }, options),
    await burstAzure("azure overlay", { networkPluginMode: "overlay", podCidr: POD_CIDR }, options),
  ];
  return { rows, yardstick };
}

// ---- 2. churn ----------------------------------------------------------------------------------

/** demand[step][node]: a seeded random walk of pods per node, 0..WALK_MAX, ±WALK_STEP per step. */
export function demandWalk(o: { nodes: number; steps: number; seed: number }): number[][] {
  const random = seededRandom(o.seed);
  const draw = (lo: number, hi: number): number => lo + Math.floor(random() * (hi - lo + 1));
  let now = Array.from({ length: o.nodes }, () => draw(0, WALK_MAX));
  const out = [now];
  for (let s = 1; s < o.steps; s++) {
    now = now.map((d) => Math.min(WALK_MAX, Math.max(0, d + draw(-WALK_STEP, WALK_STEP))));
    out.push(now);
  }
  return out;
}

const total = (row: readonly number[]): number => row.reduce((s, d) => s + d, 0);
const peakOf = (walk: readonly (readonly number[])[]): number => Math.max(...walk.map(total));

interface ChurnResult {
  label: string;
  /** The subnet pods take addresses from, with its usable count. */
  subnet: string;
  /** Per sample (after each step) per node: assigned − pods. */
  idle: number[];
  /** Per step: Σ assigned, Σ pods. */
  reserved: number[];
  used: number[];
  /** Steps after which the subnet state said exhausted. */
  exhaustedSteps: number;
  /** Failed ADDs by error name. */
  failures: Map<string, number>;
  adds: number;
  /** Virtual ms each successful ADD took. */
  addMs: number[];
  reconciles: Reconcile[];
  joinWallMs: number;
  joinReconcileWallMs: number;
  wallMs: number;
  /** Set when the scenario was given up (a zero-virtual-time loop between controller and agents). */
  gaveUp?: string;
}

async function churn(o: { label: string; profile: Record<string, unknown>; walk: number[][]; subnet: string; seed: number }): Promise<ChurnResult> {
  const w0 = performance.now();
  const observed = new ObservedAzure(true);
  const { clock } = observed;
  const config = parseAzureConfig({ maxPods: CHURN_MAX_PODS, ...o.profile });
  const nodeCount = o.walk[0]!.length;
  const c = SimCluster.create({ backend: observed.backend, config, topology: underlay(nodeSubnetLength(nodeCount + 1, CHURN_MAX_PODS)), seed: o.seed, clock, store: observed.store });
  const r: ChurnResult = {
    label: o.label,
    subnet: o.subnet,
    idle: [],
    reserved: [],
    used: [],
    exhaustedSteps: 0,
    failures: new Map(),
    adds: 0,
    addMs: [],
    reconciles: [],
    joinWallMs: 0,
    joinReconcileWallMs: 0,
    wallMs: 0,
  };
  try {
    const nodes = await drive(clock, c.addNodes(nodeCount), `${o.label}: ${nodeCount} nodes`);
    await clock.advance(WARM_MS);
    await observed.reset();
    const pods = nodes.map((): SimPod[] => []);
    for (const [step, demand] of o.walk.entries()) {
      const dels: Promise<void>[] = [];
      nodes.forEach((_, i) => {
        while (pods[i]!.length > demand[i]!) dels.push(c.removePod(pods[i]!.pop()!));
      });
      if (process.env["AZURE_BENCH_DEBUG"]) console.error(`${o.label}: step ${step} at ${clock.now()} ms, wall ${Math.round(performance.now() - w0)} ms`);
      await drive(clock, Promise.all(dels), `${o.label}: step ${step} DELs`);
      observed.check(`step ${step}`);
      const adds: Promise<void>[] = [];
      nodes.forEach((node, i) => {
        for (let k = pods[i]!.length; k < demand[i]!; k++) {
          const t0 = clock.now();
          r.adds++;
          adds.push(
            c.addPod(node.name).then(
              (pod) => {
                pods[i]!.push(pod);
                r.addMs.push(clock.now() - t0);
              },
              (err: unknown) => {
                const name = (err as { name?: string }).name ?? "Error";
                r.failures.set(name, (r.failures.get(name) ?? 0) + 1);
              },
            ),
          );
        }
      });
      await drive(clock, Promise.all(adds), `${o.label}: step ${step} ADDs`);
      observed.check(`step ${step}`);
      await clock.advance(SETTLE_MS);
      await observed.flush();
      const report = observed.controller.report();
      const assigned = new Map(report.nodes.map((n) => [n.name, n.assigned]));
      nodes.forEach((node, i) => r.idle.push((assigned.get(node.name) ?? 0) - pods[i]!.length));
      r.reserved.push(nodes.reduce((s, node) => s + (assigned.get(node.name) ?? 0), 0));
      r.used.push(total(pods.map((p) => p.length)));
      if (report.subnets.some((s) => s.exhausted)) r.exhaustedSteps++;
    }
    r.reconciles = [...observed.reconciles];
    // One more node joins the churned cluster.
    await observed.reset();
    const j0 = performance.now();
    await drive(clock, c.addNode(), `${o.label}: node ${nodeCount + 1} joining`);
    await observed.flush();
    r.joinWallMs = performance.now() - j0;
    r.joinReconcileWallMs = observed.reconciles.reduce((s, x) => s + x.wallMs, 0);
  } catch (err) {
    if ((err as { name?: string }).name !== "FlapError") throw err;
    r.gaveUp = `after ${r.reserved.length} of ${o.walk.length} steps: ${(err as Error).message}`;
    r.reconciles = [...observed.reconciles];
  } finally {
    await c.close();
  }
  r.wallMs = performance.now() - w0;
  return r;
}

async function churns(options: AzureBenchOptions): Promise<{ roomy: ChurnResult[]; scarce: ChurnResult[]; walk: number[][]; scarceWalk: number[][] }> {
  const walk = demandWalk(options);
  const roomyLength = smallestFittingPrefix({ required: options.nodes * (WALK_MAX + MAX_IDLE) });
  const roomy = `${POD_SUBNET_BASE}/${roomyLength}`;
  const seed = options.seed;
  const azureLike = { podIpAllocationMode: "DynamicIndividual", poolMonitor: "v1", reclaimIdle: false };
  const ours = { podIpAllocationMode: "DynamicIndividual", poolMonitor: "v2", reclaimIdle: true };
  const classicLength = nodeSubnetLength(options.classicNodes + 1, CHURN_MAX_PODS);
  const roomyResults = [
    await churn({
      label: `classic (maxPods ${CHURN_MAX_PODS})${options.classicNodes === options.nodes ? "" : `, first ${options.classicNodes} nodes†`}`,
      profile: {},
      walk: walk.map((row) => row.slice(0, options.classicNodes)),
      subnet: `2 node subnets /${classicLength}`,
      seed,
    }),
    await churn({ label: "dynamic Azure-like (v1, reclaimIdle false)", profile: { ...azureLike, podSubnet: roomy }, walk, subnet: roomy, seed }),
    await churn({ label: "dynamic ours (v2 + reclaimIdle)", profile: { ...ours, podSubnet: roomy }, walk, subnet: roomy, seed }),
  ];
  // Scarcity: one size below what the raw walk's peak + one spare per node needs; the walk scaled into it.
  const tightLength = smallestFittingPrefix({ required: peakOf(walk) + options.nodes }) + 1;
  const usable = usableForLength(tightLength);
  const factor = (usable - options.nodes) / peakOf(walk);
  const scarceWalk = walk.map((row) => row.map((d) => Math.floor(d * factor)));
  const tight = `${POD_SUBNET_BASE}/${tightLength}`;
  const scarce = [
    await churn({ label: "scarce: dynamic Azure-like (v1, reclaimIdle false)", profile: { ...azureLike, podSubnet: tight }, walk: scarceWalk, subnet: tight, seed }),
    await churn({ label: "scarce: dynamic ours (v2 + reclaimIdle)", profile: { ...ours, podSubnet: tight }, walk: scarceWalk, subnet: tight, seed }),
  ];
  return { roomy: roomyResults, scarce, walk, scarceWalk };
}

// ---- output ------------------------------------------------------------------------------------

const mean = (xs: readonly number[]): number => (xs.length === 0 ? Number.NaN : total(xs) / xs.length);
const ms = (x: number): number => Math.round(x * 100) / 100;

function burstTable(rows: readonly BurstRow[], yardstick: BurstRow, pods: number): string {
  const rate = (r: BurstRow): number => (pods / r.wallMs) * 1000;
  const dash = (x: number | undefined): string | number => (x === undefined ? "—" : x);
  return formatTable(
    ["mode", "wall ms", "virtual ms", "pods/s (wall)", "× yardstick pods/s", "requestedIPCount changes", "NNC spec writes", "NNC status writes", "reconciles"],
    [yardstick, ...rows].map((r) => [r.label, ms(r.wallMs), r.virtualMs, rate(r), rate(r) / rate(yardstick), dash(r.requestChanges), dash(r.specWrites), dash(r.statusWrites), dash(r.reconciles)]),
  );
}

function failuresText(r: ChurnResult): string {
  const failed = total([...r.failures.values()]);
  if (failed === 0) return `0 of ${r.adds}`;
  return `${failed} of ${r.adds} (${[...r.failures].map(([name, n]) => `${name} ${n}`).join(", ")})`;
}

function idleTable(results: readonly ChurnResult[]): string {
  const max = (xs: readonly number[]): number | string => (xs.length === 0 ? "—" : Math.max(...xs));
  return formatTable(
    [
      "mode",
      "steps run",
      "pod addresses from",
      "idle/node mean",
      "idle p95",
      "idle max",
      "reserved Σ (mean)",
      "used Σ (mean)",
      "reserved / used",
      "steps exhausted",
      "ADDs failed",
      "ADDs that waited",
      "ADD virtual ms p95",
      "ADD virtual ms max",
    ],
    results.map((r) => [
      r.label,
      r.gaveUp === undefined ? `${r.reserved.length}` : `${r.reserved.length} (given up*)`,
      r.subnet,
      mean(r.idle),
      percentile(r.idle, 95),
      max(r.idle),
      mean(r.reserved),
      mean(r.used),
      total(r.reserved) / total(r.used),
      `${r.exhaustedSteps} of ${r.reserved.length}`,
      failuresText(r),
      r.addMs.filter((x) => x > 0).length,
      percentile(r.addMs, 95),
      max(r.addMs),
    ]),
  );
}

/** The footnotes of scenarios given up. */
function gaveUpNotes(results: readonly ChurnResult[]): string {
  return results
    .filter((r) => r.gaveUp !== undefined)
    .map((r) => `\n* ${r.label}: given up ${r.gaveUp}`)
    .join("");
}

function latencyTable(results: readonly ChurnResult[], nodes: number): string {
  return formatTable(
    [
      "mode",
      "reconciles",
      "wall ms Σ",
      "wall ms p50",
      "wall ms p95",
      "wall ms max",
      "virtual ms p50",
      "virtual ms p95",
      "virtual ms max",
      `join at ${nodes} nodes: wall ms`,
      "of it in reconciles: wall ms",
      "scenario wall s",
    ],
    results.map((r) => {
      const wall = r.reconciles.map((x) => x.wallMs);
      const virtual = r.reconciles.map((x) => x.virtualMs);
      const joined = r.gaveUp === undefined;
      return [
        r.label,
        r.reconciles.length,
        ms(total(wall)),
        ms(percentile(wall, 50)),
        ms(percentile(wall, 95)),
        ms(Math.max(0, ...wall)),
        percentile(virtual, 50),
        percentile(virtual, 95),
        Math.max(0, ...virtual),
        joined ? ms(r.joinWallMs) : "—",
        joined ? ms(r.joinReconcileWallMs) : "—",
        ms(r.wallMs / 1000),
      ];
    }),
  );
}

/** Runs the three measurements, prints their Markdown tables under `command`, returns the headline figures. */
export async function runAzureBench(options: AzureBenchOptions, command: string): Promise<Figure[]> {
  console.log(`command: ${command}`);
  console.log(`options: ${JSON.stringify(options)}`);
  const { rows, yardstick } = await bursts(options);
  console.log(`\n### 1. Burst: ${options.pods} ADDs at once on one node (maxPods ${BURST_MAX_PODS}), per mode, beside the reference backend\n`);
  console.log(burstTable(rows, yardstick, options.pods));
  console.log(
    "\nVirtual time: the simulator's controller answers at the same virtual instant; v1 moves its request on the monitor's 1 s tick, v2 once per turn of the clock (the ADDs and statuses of one instant are coalesced into one spec write: its whole demand).",
  );

  const { roomy, scarce, walk, scarceWalk } = await churns(options);
  console.log(
    `\n### 2. Idle addresses per node over a ${options.nodes}-node churn (${options.steps} steps, pods per node a seeded walk 0..${WALK_MAX}, ±${WALK_STEP}; sampled ${SETTLE_MS / 1000} s after each step)\n`,
  );
  console.log(`demand: mean ${mean(walk.map(total)).toFixed(0)} pods, peak ${peakOf(walk)} pods in the cluster\n`);
  console.log(idleTable(roomy) + gaveUpNotes(roomy));
  if (options.classicNodes !== options.nodes) {
    console.log(
      `\n† classic runs the walk of the first ${options.classicNodes} nodes (\`--classic-nodes N\` for more): building a classic cluster in the simulator costs ~nodes² × maxPods membership deliveries (every secondary address reaches every agent; ~3 minutes at 100 nodes), and a classic node's idle count, maxPods − pods, does not depend on the cluster size.`,
    );
  }
  const tight = scarce[0]!.subnet;
  console.log(
    `\nScarcity: pod subnet ${tight} (${usableForLength(Number(tight.split("/")[1]))} usable); the walk scaled to peak ${peakOf(scarceWalk)} pods (mean ${mean(scarceWalk.map(total)).toFixed(0)}), peak + 1 per node = ${peakOf(scarceWalk) + options.nodes}\n`,
  );
  console.log(idleTable(scarce) + gaveUpNotes(scarce));
  console.log(`\n### 3. Controller reconciles during the churn (every reconcile), and one more node joining\n`);
  console.log(latencyTable([...roomy, ...scarce], options.nodes));
  console.log("");

  const byLabel = (label: string): BurstRow => rows.find((r) => r.label === label)!;
  const rate = (r: BurstRow): number => (options.pods / r.wallMs) * 1000;
  const figures: Figure[] = [{ name: `burst ${options.pods}: reference (yardstick)`, value: rate(yardstick), unit: "pods/s" }];
  for (const r of rows) figures.push({ name: `burst ${options.pods}: ${r.label}`, value: rate(r), unit: "pods/s" });
  for (const label of ["azure dynamic v1 (Azure's monitor)", "azure dynamic v2 (ours)"]) {
    figures.push({ name: `burst: ${label}: requestedIPCount changes`, value: byLabel(label).requestChanges ?? 0, unit: "round trips" });
    figures.push({ name: `burst: ${label}: NNC status writes`, value: byLabel(label).statusWrites ?? 0, unit: "writes" });
  }
  for (const r of [...roomy, ...scarce]) {
    figures.push({ name: `churn ${options.nodes} nodes, ${r.label}: idle per node (mean)`, value: mean(r.idle), unit: "addresses" });
    figures.push({ name: `churn ${options.nodes} nodes, ${r.label}: ADDs failed`, value: total([...r.failures.values()]), unit: "ADDs" });
    figures.push({
      name: `churn ${options.nodes} nodes, ${r.label}: reconcile p95 (wall)`,
      value: percentile(
        r.reconciles.map((x) => x.wallMs),
        95,
      ),
      unit: "ms",
    });
  }
  return figures;
}

/** `pnpm bench azure`: flags from AZURE_BENCH_ARGS (default: the full run). */
export async function benchAzure(): Promise<Figure[]> {
  const args = (process.env["AZURE_BENCH_ARGS"] ?? "").split(/\s+/).filter(Boolean);
  return runAzureBench(parseAzureBenchArgs(args), `pnpm bench azure${args.length > 0 ? ` (AZURE_BENCH_ARGS="${args.join(" ")}")` : ""}`);
}

await runIfMain(import.meta.url, "azure backend in the simulator: burst, idle addresses under churn, controller reconciles", () => {
  const args = process.argv.slice(2);
  return runAzureBench(parseAzureBenchArgs(args), ["npx tsx --conditions=source scripts/bench/azure.ts", ...args].join(" "));
});
