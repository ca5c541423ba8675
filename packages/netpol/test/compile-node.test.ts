// compileNode: filters and nftables ruleset from one analysis, with warnings; compiling for a node
// that no pod names warns (API: `warnings`; CLI: stderr), never silently enforces nothing.
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { main } from "../src/cli.ts";
import { compileFilters, compileNft, compileNode, compileWarnings, parseCluster, parsePolicies } from "../src/index.ts";
import { e2eCluster } from "./e2e-model.ts";

const POLICIES = parsePolicies("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: x}\nspec: {podSelector: {}}\n");
const FIX = fileURLToPath(new URL("./fixtures/", import.meta.url));

describe("compileNode", () => {
  it("gives compileFilters and compileNft of the input, and no warning for a node with pods", () => {
    const input = { model: { ...e2eCluster(), policies: POLICIES }, node: "node-a", families: [4 as const] };
    const r = compileNode(input);
    expect(r.warnings).toEqual([]);
    expect(r.filters).toEqual(compileFilters(input));
    expect(r.nft).toEqual(compileNft(input));
    expect(r.filters.map((f) => f.pod)).toEqual(["x-a/eth0"]);
  });

  it("warns when no pod runs on the node, naming the nodes pods do run on", () => {
    const r = compileNode({ model: { ...e2eCluster(), policies: POLICIES }, node: "node-q" });
    expect(r.filters).toEqual([]);
    expect(r.warnings).toEqual([{ code: "node-without-pods", node: "node-q", message: expect.stringContaining("no pod of the cluster runs on node node-q") }]);
    expect(r.warnings[0]!.message).toContain("pods run on node-a, node-b, node-c");
  });

  it("says so when no pod names any node (Pods without spec.nodeName)", () => {
    const cluster = parseCluster("apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x}\nspec: {containers: []}\n");
    const [w] = compileWarnings({ model: cluster, node: "n1" });
    expect(w?.message).toContain("no pod names a node: give Pods spec.nodeName");
  });
});

describe("cnikit-netpol --node", () => {
  async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = "";
    let err = "";
    const code = await main(args, { out: (t) => (out += t), err: (t) => (err += t) });
    return { code, out, err };
  }
  const files = ["--policies", join(FIX, "policies.yaml"), "--cluster", join(FIX, "cluster.yaml")];

  it("prints the warning on stderr for filters and nft, and keeps stdout the result", async () => {
    const f = await cli(["filters", ...files, "--node", "node-q"]);
    expect(f).toMatchObject({ code: 0, out: "[]\n" });
    expect(f.err).toMatch(/^cnikit-netpol: warning: no pod of the cluster runs on node node-q, so nothing is enforced there \(pods run on node-a, node-b, node-c\)\n$/);
    const n = await cli(["nft", ...files, "--node", "node-q"]);
    expect(n.code).toBe(0);
    expect(n.out).toContain("table inet cnikit-netpol");
    expect(n.err).toContain("warning: no pod of the cluster runs on node node-q");
  });

  it("prints nothing on stderr for a node with pods", async () => {
    const f = await cli(["filters", ...files, "--node", "node-a"]);
    expect(f.code).toBe(0);
    expect(f.err).toBe("");
  });
});
