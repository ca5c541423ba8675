// NetworkPolicy benchmark: evaluator verdicts per second; compiling one node's policies (nftables
// ruleset and NodeDataplane filters) for 1,000 pods × 200 policies, with the ruleset's size; and
// the incremental update for one pod relabel (recompile + element diff). The cluster is generated
// from a seeded PRNG, so every run measures the same input. Wall-clock figures; nothing asserted.
// Run alone: pnpm exec tsx --conditions=source scripts/bench/netpol.ts
import { seededRandom } from "@cnikit/core";
import {
  NftNodeCompiler,
  PolicyEvaluator,
  compileFilters,
  compileNft,
  indexPolicies,
  nftStats,
  nftUpdate,
  parsePolicies,
  renderNft,
  type Cluster,
  type PolicyModel,
} from "../../packages/netpol/src/index.ts";
import { runIfMain, type Figure } from "./figures.ts";

const NAMESPACES = 20;
const PODS = 1000;
const POLICIES = 200;
const NODES = 10;
const APPS = 12;
const TEAMS = 4;

/** 20 namespaces × 50 pods on 10 nodes; labels app (12 values), tier (3) and team on namespaces. */
export function cluster(random: () => number): Cluster {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const namespaces = Array.from({ length: NAMESPACES }, (_, i) => ({ name: `ns${i}`, labels: { team: `t${i % TEAMS}`, env: i % 2 === 0 ? "prod" : "dev" } }));
  const pods = Array.from({ length: PODS }, (_, i) => {
    const ns = `ns${i % NAMESPACES}`;
    return {
      namespace: ns,
      name: `pod${i}`,
      labels: { app: `app${Math.floor(random() * APPS)}`, tier: pick(["web", "api", "db"] as const) },
      ips: [`10.${64 + Math.floor(i / 250)}.${Math.floor((i % 250) / 1)}.${10 + (i % 7)}`],
      ports: [
        { name: "http", containerPort: pick([80, 8080] as const), protocol: "TCP" as const },
        { name: "metrics", containerPort: 9090, protocol: "TCP" as const },
      ],
      node: `node${i % NODES}`,
      hostIf: `veth${i}`,
    };
  });
  return { namespaces, pods };
}

/** 200 policies of the usual shapes: app-to-app, cross-namespace, ipBlock, egress ranges, named ports, default deny. */
export function policies(random: () => number): string {
  const docs: string[] = [];
  for (let i = 0; i < POLICIES; i++) {
    const ns = `ns${Math.floor(random() * NAMESPACES)}`;
    const app = `app${Math.floor(random() * APPS)}`;
    const other = `app${Math.floor(random() * APPS)}`;
    const kind = i % 10;
    let spec: string;
    if (kind <= 3) spec = `{podSelector: {matchLabels: {app: ${app}}}, ingress: [{from: [{podSelector: {matchLabels: {app: ${other}}}}], ports: [{port: 80}, {port: 8080}]}]}`;
    else if (kind <= 5)
      spec = `{podSelector: {matchLabels: {app: ${app}}}, ingress: [{from: [{namespaceSelector: {matchLabels: {team: t${i % TEAMS}}}, podSelector: {matchExpressions: [{key: tier, operator: In, values: [web, api]}]}}]}]}`;
    else if (kind === 6) spec = `{podSelector: {matchLabels: {tier: db}}, ingress: [{from: [{ipBlock: {cidr: 10.64.0.0/14, except: [10.65.0.0/16, 10.66.${i % 250}.0/24]}}], ports: [{port: 5432}]}]}`;
    else if (kind === 7)
      spec = `{podSelector: {matchLabels: {app: ${app}}}, policyTypes: [Egress], egress: [{to: [{namespaceSelector: {matchLabels: {env: prod}}}], ports: [{port: 8000, endPort: 8100}, {protocol: UDP, port: 53}]}]}`;
    else if (kind === 8) spec = `{podSelector: {matchLabels: {app: ${app}}}, ingress: [{from: [{namespaceSelector: {}}], ports: [{port: http}, {port: metrics}]}], egress: [{ports: [{port: http}]}]}`;
    else spec = `{podSelector: {}, policyTypes: [Ingress]}`;
    docs.push(`---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: np${i}, namespace: ${ns}}\nspec: ${spec}\n`);
  }
  return docs.join("");
}

function timeIt<T>(fn: () => T, minMs = 1000): { ms: number; result: T } {
  let result = fn(); // warm-up
  let runs = 0;
  const t0 = performance.now();
  let elapsed = 0;
  do {
    result = fn();
    runs++;
    elapsed = performance.now() - t0;
  } while (elapsed < minMs);
  return { ms: elapsed / runs, result };
}

/** Runs the netpol benchmark; returns the figures. */
export async function benchNetpol(): Promise<Figure[]> {
  const random = seededRandom(0x6e70);
  const c = cluster(random);
  const model: PolicyModel = { ...c, policies: parsePolicies(policies(random), "bench") };
  const figures: Figure[] = [];

  // Evaluator: random pod pairs and probes.
  const ev = new PolicyEvaluator(model);
  const ids = ev.podIds();
  const queries = Array.from({ length: 2000 }, () => ({
    from: ids[Math.floor(random() * ids.length)]!,
    to: ids[Math.floor(random() * ids.length)]!,
    protocol: random() < 0.8 ? ("TCP" as const) : ("UDP" as const),
    port: [80, 8080, 53, 5432, 8050, 9090][Math.floor(random() * 6)]!,
  }));
  let allowed = 0;
  const evalRun = timeIt(() => {
    for (const q of queries) if (ev.verdict(q).allowed) allowed++;
    return allowed;
  });
  figures.push({ name: `evaluator verdicts (${PODS} pods × ${POLICIES} policies, random pairs)`, value: (queries.length / evalRun.ms) * 1000, unit: "verdicts/s" });

  const node = "node3";
  const local = c.pods.filter((p) => p.node === node).length;
  const input = { model, node, families: [4] as (4 | 6)[] };
  const idx = timeIt(() => indexPolicies(model), 500);
  figures.push({ name: `index policies (resolve selectors, ${PODS} pods × ${POLICIES} policies)`, value: idx.ms, unit: "ms" });
  const nft = timeIt(() => compileNft(input), 1000);
  figures.push({ name: `compile nftables ruleset for one node (${local} local pods)`, value: nft.ms, unit: "ms" });
  const text = timeIt(() => renderNft(nft.result), 500);
  figures.push({ name: "render ruleset text", value: text.ms, unit: "ms" });
  const stats = nftStats(nft.result);
  figures.push({ name: "ruleset rules", value: stats.rules, unit: "rules" });
  figures.push({ name: "ruleset sets and maps", value: stats.sets, unit: "sets" });
  figures.push({ name: "ruleset set elements", value: stats.elements, unit: "elements" });
  figures.push({ name: "ruleset text size", value: Buffer.byteLength(text.result) / 1024, unit: "KiB" });
  const filters = timeIt(() => compileFilters(input), 1000);
  figures.push({ name: `compile NodeDataplane filters for the node`, value: filters.ms, unit: "ms" });
  figures.push({ name: "filter rules in the node's dataplane", value: filters.result.reduce((n, f) => n + f.rules.length, 0), unit: "rules" });

  // One pod relabel: a local pod changes app (its selections and every peer set that names it).
  const target = c.pods.find((p) => p.node === node)!;
  const relabelled: PolicyModel = { ...model, pods: model.pods.map((p) => (p === target ? { ...p, labels: { ...p.labels, app: `app${(Number(p.labels.app!.slice(3)) + 1) % APPS}` } } : p)) };
  const before = nft.result;
  const upd = timeIt(() => nftUpdate(before, compileNft({ ...input, model: relabelled })), 1000);
  figures.push({ name: "one pod relabel: full recompile + element diff", value: upd.ms, unit: "ms" });
  // The incremental compiler recomputes only the policies the relabel can touch.
  const compiler = new NftNodeCompiler(input);
  let flip = false;
  const inc = timeIt(() => {
    flip = !flip;
    return compiler.update(flip ? relabelled : model);
  }, 1000);
  figures.push({ name: "one pod relabel: NftNodeCompiler.update (touched policies only)", value: inc.ms, unit: "ms" });
  figures.push({ name: `one pod relabel: nft commands (${inc.result.kind})`, value: inc.result.commands.length, unit: "commands" });
  figures.push({ name: "one pod relabel: set elements changed", value: inc.result.commands.reduce((n, c) => n + c.split(", ").length, 0), unit: "elements" });
  return figures;
}

await runIfMain(import.meta.url, "netpol", benchNetpol);
