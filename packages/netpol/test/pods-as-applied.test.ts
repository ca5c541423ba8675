// Pod manifests as applied (no status): accepted; IPs from options.podIPs, status.podIPs or
// status.podIP, in that order; a pod with no IP from any source is selected and matched by selectors
// like any pod, but no ipBlock matches it and compiled filters and nftables sets hold no address for it.
import { describe, expect, it } from "vitest";
import { PolicyEvaluator, compileFilters, compileNft, explainVerdict, parseCluster, parsePolicies, renderNft } from "../src/index.ts";

const NS = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {team: web}}\n";
function podDoc(name: string, labels: string, status = ""): string {
  return `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}, namespace: shop, labels: ${labels}}\nspec:\n  nodeName: n1\n  containers:\n  - {name: c, image: nginx, ports: [{name: http, containerPort: 8080}]}\n${status}`;
}
const AS_APPLIED = [NS, podDoc("web", "{app: web}"), podDoc("db", "{app: db}")].join("---\n");

/** The error `fn` throws (duck-typed), or a failure when it answers. */
function refusal(fn: () => unknown): { code: unknown; field: unknown; rule: string } {
  try {
    fn();
  } catch (err) {
    const e = err as { code?: unknown; field?: unknown; rule?: unknown };
    return { code: e.code, field: e.field, rule: String(e.rule) };
  }
  throw new Error("expected a refusal, got an answer");
}

describe("parseCluster: Pods as applied", () => {
  it("accepts Pod manifests without status: the pods have no IP", () => {
    const c = parseCluster(AS_APPLIED, "pods.yaml");
    expect(c.pods.map((p) => [p.name, p.ips, p.node, p.ports])).toEqual([
      ["web", [], "n1", [{ name: "http", containerPort: 8080, protocol: "TCP" }]],
      ["db", [], "n1", [{ name: "http", containerPort: 8080, protocol: "TCP" }]],
    ]);
  });

  it("takes status.podIPs, else status.podIP", () => {
    const text = [NS, podDoc("web", "{app: web}", "status: {podIP: 10.0.0.9, podIPs: [{ip: 10.0.0.5}, {ip: 'fd00::5'}]}\n"), podDoc("db", "{app: db}", "status: {podIP: 10.0.0.6}\n")].join("---\n");
    expect(parseCluster(text).pods.map((p) => p.ips)).toEqual([["10.0.0.5", "fd00::5"], ["10.0.0.6"]]);
  });

  it("takes IPs from options.podIPs by namespace/name (canonical), replacing the document's", () => {
    const text = [NS, podDoc("web", "{app: web}", "status: {podIP: 10.0.0.9}\n"), podDoc("db", "{app: db}")].join("---\n");
    const c = parseCluster(text, "pods.yaml", { podIPs: { "shop/web": ["10.0.0.5"], "shop/db": ["10.0.0.6", "fd00:0:0::6"] } });
    expect(c.pods.map((p) => p.ips)).toEqual([["10.0.0.5"], ["10.0.0.6", "fd00::6"]]);
  });

  it("refuses a podIPs entry naming no pod, or holding something that is not an address", () => {
    const typo = refusal(() => parseCluster(AS_APPLIED, "pods.yaml", { podIPs: { "shop/wbe": ["10.0.0.5"] } }));
    expect(typo).toMatchObject({ code: 7, field: 'podIPs["shop/wbe"]' });
    expect(typo.rule).toContain("names no pod of the cluster");
    expect(typo.rule).toContain("shop/web");
    expect(refusal(() => parseCluster(AS_APPLIED, "pods.yaml", { podIPs: { "shop/web": ["10.0.0.300"] } }))).toMatchObject({ code: 7, field: 'podIPs["shop/web"][0]' });
    expect(refusal(() => parseCluster(AS_APPLIED, "pods.yaml", { podIPs: { "shop/web": "10.0.0.5" as unknown as string[] } }))).toMatchObject({ code: 7, field: 'podIPs["shop/web"]' });
  });

  it("refuses a status.podIP that is not a string", () => {
    expect(refusal(() => parseCluster([NS, podDoc("web", "{app: web}", "status: {podIP: 7}\n")].join("---\n")))).toMatchObject({ code: 7, field: "status.podIP" });
  });

  it("needs no Namespace document for default, which every cluster has (other namespaces must be declared)", () => {
    const c = parseCluster("apiVersion: v1\nkind: Pod\nmetadata: {name: web, labels: {app: web}}\nspec: {nodeName: n1, containers: [{name: c, image: nginx}]}\n", "pod.yaml");
    expect(c.namespaces).toEqual([{ name: "default", labels: { "kubernetes.io/metadata.name": "default" } }]);
    expect(c.pods.map((p) => `${p.namespace}/${p.name}`)).toEqual(["default/web"]);
    const elsewhere = refusal(() => parseCluster(podDoc("web", "{app: web}"), "pod.yaml"));
    expect(elsewhere).toMatchObject({ code: 7, field: "metadata.namespace" });
    expect(elsewhere.rule).toContain("names namespace shop, which the cluster does not declare");
  });

  it("accepts a compact pod without ips too", () => {
    expect(parseCluster("namespaces: [{name: x}]\npods: [{namespace: x, name: a, node: n1}]\n").pods[0]!.ips).toEqual([]);
  });
});

describe("a pod without an IP: matched by selectors, never by address", () => {
  // db accepts TCP 8080 from app=web pods only; web may send only to 10.0.0.0/8.
  const policies = parsePolicies(
    [
      "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: db, namespace: shop}\nspec: {podSelector: {matchLabels: {app: db}}, ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 8080}]}]}\n",
      "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: shop}\nspec: {podSelector: {matchLabels: {app: web}}, policyTypes: [Egress], egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8}}]}]}\n",
    ].join("---\n"),
  );

  it("the evaluator decides by identity for selector peers, and no ipBlock matches a pod without an IP", () => {
    const cluster = parseCluster(AS_APPLIED, "pods.yaml", { podIPs: { "shop/db": ["10.0.0.6"] } });
    const ev = new PolicyEvaluator({ ...cluster, policies });
    // web has no IP: db's selector peer still admits it; web's egress goes to db at 10.0.0.6 (inside the block).
    const v = ev.verdict({ from: "shop/web", to: "shop/db", protocol: "TCP", port: 8080 });
    expect(v).toMatchObject({ allowed: true, src: undefined, dst: "10.0.0.6" });
    expect(explainVerdict(v)).toContain("shop/web (no IP) → shop/db (10.0.0.6) TCP/8080: ALLOWED");
    // Both without IPs: the ipBlock of web's egress cannot match db.
    const bare = new PolicyEvaluator({ ...parseCluster(AS_APPLIED), policies });
    const w = bare.verdict({ from: "shop/web", to: "shop/db", protocol: "TCP", port: 8080 });
    expect(w.egress).toMatchObject({ isolated: true, allowed: false });
    expect(w.ingress).toMatchObject({ isolated: true, allowed: true });
    expect(bare.matrix({ protocol: "TCP", port: 8080 }).allowed).toEqual([
      [true, false],
      [true, true],
    ]);
  });

  it("compiled filters: the pod is still filtered (by its key); as a peer it adds no address", () => {
    const cluster = parseCluster(AS_APPLIED, "pods.yaml", { podIPs: { "shop/db": ["10.0.0.6"] } });
    const filters = compileFilters({ model: { ...cluster, policies }, node: "n1" });
    expect(filters.map((f) => `${f.pod} ${f.direction}`)).toEqual(["shop/db ingress", "shop/web egress"]);
    // db's only rule selects web, which has no address: the rule matches nothing (omitted), never "all".
    expect(filters[0]!.rules).toEqual([]);
    const withIp = compileFilters({ model: { ...parseCluster(AS_APPLIED, "p", { podIPs: { "shop/db": ["10.0.0.6"], "shop/web": ["10.0.0.5"] } }), policies }, node: "n1" });
    expect(withIp[0]!.rules.map((r) => r.peers)).toEqual([[{ cidrs: ["10.0.0.5/32"] }]]);
  });

  it("nftables: the pod is dispatched by interface; its peer set has no element", () => {
    const cluster = parseCluster(AS_APPLIED, "pods.yaml");
    const rs = compileNft({ model: { ...cluster, policies }, node: "n1", families: [4] });
    const sel = rs.sets.filter((s) => s.name.endsWith("-sel")).map((s) => s.elements.length);
    expect(sel).toEqual([1, 1]);
    const peers = rs.sets.find((s) => s.name === "p0-in0-a4");
    expect(peers?.elements).toEqual([]);
    expect(renderNft(rs)).toContain("table inet cnikit-netpol");
  });
});
