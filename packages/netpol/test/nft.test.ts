// The nftables ruleset: deterministic text, the layout's invariants, element-only updates for pod
// and namespace changes (property-based: the commands lead exactly to the target), full
// replacement for policy changes.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { NftNodeCompiler, applyElementCommands, compileFilters, compileNft, nftStats, nftUpdate, parsePolicies, renderNft, type Cluster, type NetworkPolicy } from "../src/index.ts";
import { CASES } from "./cases.ts";
import { e2eCluster, pod, policiesOf } from "./e2e-model.ts";

const NODE = "n1";

function oneNode(c: Cluster): Cluster {
  return { ...c, pods: c.pods.map((p) => ({ ...p, node: NODE })) };
}

function nft(cluster: Cluster, policies: NetworkPolicy[], families: (4 | 6)[] = [4]) {
  return compileNft({ model: { ...oneNode(cluster), policies }, node: NODE, families });
}

function caseNamed(name: string) {
  const c = CASES.find((k) => k.name === name);
  if (!c) throw new Error(name);
  return c;
}

describe("nftables ruleset", () => {
  it("is deterministic: same text for the same input, whatever the order of pods, namespaces and policies", () => {
    for (const c of CASES) {
      const cluster = e2eCluster(c.edit);
      const policies = policiesOf(c);
      const a = renderNft(nft(cluster, policies, [4, 6]));
      const shuffled: Cluster = { namespaces: [...cluster.namespaces].reverse(), pods: [...cluster.pods].reverse() };
      const b = renderNft(nft(shuffled, [...policies].reverse(), [6, 4]));
      expect(b, c.name).toBe(a);
    }
  });

  it("has one table of our own with both base chains on the forward hook, conntrack first", () => {
    const text = renderNft(nft(e2eCluster(), policiesOf(caseNamed("default-deny-ingress in x"))));
    expect(text.startsWith("table inet cnikit-netpol {\n")).toBe(true);
    expect(text.match(/^table /gm)).toHaveLength(1);
    expect(text).toContain("\tchain forward-out {\n\t\ttype filter hook forward priority 0; policy accept;\n\t\tct state established,related accept\n\t\tiifname vmap @out-pods\n\t}");
    expect(text).toContain("\tchain forward-in {\n\t\ttype filter hook forward priority 10; policy accept;\n\t\tct state established,related accept\n\t\toifname vmap @in-pods\n\t}");
    expect(text).toContain('elements = { "vxa" : goto in-policies, "vxb" : goto in-policies, "vxc" : goto in-policies }');
  });

  it("merges peer addresses into disjoint intervals: ipBlock minus except, plus selected pods", () => {
    const rs = nft(e2eCluster(), policiesOf(caseNamed("ipBlock except carved out of the pod network, with a selector peer adding one pod back")));
    const set = rs.sets.find((s) => s.name === "p0-in0-a4")!;
    expect(set.elements.map((e) => e.key)).toEqual(["10.244.0.0/23", "10.244.2.12", "10.244.3.0-10.244.255.255"]);
    const range = nft(e2eCluster(), policiesOf(caseNamed("endPort: ingress from y on TCP 80-81")));
    expect(range.sets.find((s) => s.name === "p0-in0-tcp")!.elements.map((e) => e.key)).toEqual(["80-81"]);
  });

  it("resolves named ports per local pod (ingress) and per destination pod (egress)", () => {
    const ing = nft(
      e2eCluster(caseNamed("named ingress port resolves per destination pod (web: y/a 80, y/b 81, y/c none)").edit),
      policiesOf(caseNamed("named ingress port resolves per destination pod (web: y/a 80, y/b 81, y/c none)")),
    );
    expect(ing.sets.find((s) => s.name === "p0-in0-tcp-named")!.elements.map((e) => e.key)).toEqual(['"vya" . 80', '"vyb" . 81']);
    const egCase = caseNamed("named egress port resolves against each destination pod");
    const eg = nft(e2eCluster(egCase.edit), policiesOf(egCase));
    expect(eg.sets.find((s) => s.name === "p0-out0-tcp-named4")!.elements.map((e) => e.key)).toEqual(["10.244.2.10 . 80", "10.244.2.11 . 81"]);
  });

  it("counts rules, sets and elements", () => {
    const stats = nftStats(nft(e2eCluster(), policiesOf(caseNamed("default-deny-ingress in x"))));
    // sets: p0-sel + the two dispatch maps; rules: out-policies 1 + in-policies 2 + base chains 2 + 2.
    expect(stats).toEqual({ rules: 7, sets: 3, elements: 6 });
  });

  it("a pod relabelled into a peer selector changes elements only", () => {
    const c = caseNamed("pod label update: after x/b gets role=client, x/b reaches x/a");
    const policies = policiesOf(c);
    const before = nft(e2eCluster(), policies);
    const after = nft(e2eCluster(c.edit), policies);
    const u = nftUpdate(before, after);
    expect(u).toEqual({ kind: "elements", commands: ["add element inet cnikit-netpol p0-in0-a4 { 10.244.1.11 }"] });
  });

  it("a pod relabelled into a policy's podSelector joins its selection set and the dispatch map", () => {
    const c = caseNamed("pod label update: after x/a gets target=isolated, x/a is isolated");
    const policies = policiesOf(c);
    const u = nftUpdate(nft(e2eCluster(), policies), nft(e2eCluster(c.edit), policies));
    expect(u.commands).toEqual(['add element inet cnikit-netpol p0-sel { "vxa" }', 'add element inet cnikit-netpol in-pods { "vxa" : goto in-policies }']);
  });

  it("interval elements are deleted and re-added as wholes when a pod leaves a merged range", () => {
    const policies = parsePolicies(
      "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: from-all, namespace: x}\nspec: {podSelector: {matchLabels: {pod: a}}, ingress: [{from: [{namespaceSelector: {}, podSelector: {matchLabels: {role: client}}}]}]}\n",
    );
    const all = e2eCluster((c) => {
      for (const p of c.pods) p.labels.role = "client";
    });
    const minus = e2eCluster((c) => {
      for (const p of c.pods) p.labels.role = "client";
      pod(c, "y/b").labels.role = "server";
    });
    const from = nft(all, policies);
    expect(from.sets.find((s) => s.name === "p0-in0-a4")!.elements.map((e) => e.key)).toEqual(["10.244.1.10-10.244.1.12", "10.244.2.10-10.244.2.12", "10.244.3.10-10.244.3.12"]);
    const u = nftUpdate(from, nft(minus, policies));
    expect(u.commands).toEqual(["delete element inet cnikit-netpol p0-in0-a4 { 10.244.2.10-10.244.2.12 }", "add element inet cnikit-netpol p0-in0-a4 { 10.244.2.10, 10.244.2.12 }"]);
  });

  it("no change gives no commands; a policy change replaces the table atomically", () => {
    const policies = policiesOf(caseNamed("default-deny-ingress in x"));
    const rs = nft(e2eCluster(), policies);
    expect(nftUpdate(rs, nft(e2eCluster(), policies))).toEqual({ kind: "none", commands: [] });
    const other = policiesOf(caseNamed("default-deny-all (ingress and egress) in x"));
    const u = nftUpdate(rs, nft(e2eCluster(), other));
    expect(u.kind).toBe("full");
    expect(u.commands.slice(0, 3)).toEqual(["add table inet cnikit-netpol", "delete table inet cnikit-netpol", "table inet cnikit-netpol {"]);
  });

  it("property: any sequence of pod and namespace relabels, pod additions and removals moves by element commands to exactly the target", () => {
    // Several cases' policies at once, renamed apart.
    const policies = CASES.filter((c) => c.edit === undefined)
      .slice(0, 20)
      .flatMap((c, i) => policiesOf(c).map((p) => ({ ...p, name: `${p.name}-${i}` })));
    const labelKeys = ["pod", "role", "tier", "target", "special"];
    const values = ["a", "b", "c", "client", "web", "isolated", "true"];
    const change = fc.oneof(
      fc.record({ kind: fc.constant("pod" as const), pod: fc.integer({ min: 0, max: 8 }), key: fc.constantFrom(...labelKeys), value: fc.option(fc.constantFrom(...values), { nil: undefined }) }),
      fc.record({
        kind: fc.constant("ns" as const),
        ns: fc.integer({ min: 0, max: 2 }),
        key: fc.constantFrom("ns", "ns2", "team"),
        value: fc.option(fc.constantFrom("x", "y", "z", "updated"), { nil: undefined }),
      }),
      fc.record({ kind: fc.constant("remove" as const), pod: fc.integer({ min: 0, max: 8 }) }),
      fc.record({ kind: fc.constant("move" as const), pod: fc.integer({ min: 0, max: 8 }), away: fc.boolean(), readdress: fc.boolean() }),
      fc.record({ kind: fc.constant("add" as const), n: fc.integer({ min: 0, max: 5 }), ns: fc.integer({ min: 0, max: 2 }), value: fc.constantFrom(...values) }),
    );
    fc.assert(
      fc.property(fc.array(change, { minLength: 1, maxLength: 6 }), (changes) => {
        const asIs = (c: Cluster) => compileNft({ model: { ...c, policies }, node: NODE, families: [4, 6] });
        let cluster = oneNode(e2eCluster());
        let rs = asIs(cluster);
        const compiler = new NftNodeCompiler({ model: { ...cluster, policies }, node: NODE, families: [4, 6] });
        for (const ch of changes) {
          const next: Cluster = structuredClone(cluster);
          if (ch.kind === "pod" && next.pods[ch.pod]) {
            if (ch.value === undefined) delete next.pods[ch.pod]!.labels[ch.key];
            else next.pods[ch.pod]!.labels[ch.key] = ch.value;
          } else if (ch.kind === "ns") {
            if (ch.value === undefined) delete next.namespaces[ch.ns]!.labels[ch.key];
            else next.namespaces[ch.ns]!.labels[ch.key] = ch.value;
          } else if (ch.kind === "remove") next.pods.splice(ch.pod, 1);
          else if (ch.kind === "move" && next.pods[ch.pod]) {
            const p = next.pods[ch.pod]!;
            p.node = ch.away ? "elsewhere" : NODE;
            if (ch.readdress) p.ips = [p.ips[0]!.replace(/\.(\d+)$/, (_m, d: string) => `.${(Number(d) + 50) % 250}`)];
          } else if (ch.kind === "add") {
            const ns = ["x", "y", "z"][ch.ns]!;
            const name = `extra${ch.n}`;
            if (!next.pods.some((p) => p.namespace === ns && p.name === name))
              next.pods.push({
                namespace: ns,
                name,
                labels: { pod: ch.value },
                ips: [`10.244.${ch.ns + 1}.${100 + ch.n}`, `fd00::${ch.ns + 1}:${ch.n}`],
                ports: [{ name: "web", containerPort: 8080, protocol: "TCP" }],
                node: NODE,
                hostIf: `e${ns}${ch.n}`,
              });
          }
          const target = asIs(next);
          const u = nftUpdate(rs, target);
          expect(u.kind).not.toBe("full");
          expect(renderNft(applyElementCommands(rs, u.commands))).toBe(renderNft(target));
          // The incremental compiler recomputes only touched policies and must agree.
          const inc = compiler.update({ ...next, policies });
          expect(inc.kind).toBe(u.kind);
          expect(renderNft(compiler.ruleset)).toBe(renderNft(target));
          expect(renderNft(applyElementCommands(rs, inc.commands))).toBe(renderNft(target));
          cluster = next;
          rs = target;
        }
      }),
      { numRuns: 100 },
    );
  });

  it("filters and nft agree on which local pods are isolated in which direction", () => {
    for (const c of CASES) {
      const model = { ...oneNode(e2eCluster(c.edit)), policies: policiesOf(c) };
      const filters = compileFilters({ model, node: NODE });
      const rs = compileNft({ model, node: NODE, families: [4] });
      const fromFilters = filters.map((f) => `${f.direction === "ingress" ? "in" : "out"} ${model.pods.find((p) => p.key === f.pod)!.hostIf}`).sort();
      const fromNft = ["out-pods", "in-pods"].flatMap((m) => rs.sets.find((s) => s.name === m)!.elements.map((e) => `${m.split("-")[0]} ${e.key.replaceAll('"', "")}`)).sort();
      expect(fromNft, c.name).toEqual(fromFilters);
    }
  });

  it("the incremental compiler: none for the same model, a full update for a policy change, state kept after bad input", () => {
    const policies = policiesOf(caseNamed("default-deny-ingress in x"));
    const compiler = new NftNodeCompiler({ model: { ...oneNode(e2eCluster()), policies }, node: NODE, families: [4] });
    expect(compiler.update({ ...oneNode(e2eCluster()), policies })).toEqual({ kind: "none", commands: [] });
    const other = policiesOf(caseNamed("default-deny-all (ingress and egress) in x"));
    const u = compiler.update({ ...oneNode(e2eCluster()), policies: other });
    expect(u.kind).toBe("full");
    expect(renderNft(compiler.ruleset)).toBe(renderNft(nft(e2eCluster(), other)));
    const broken = oneNode(
      e2eCluster((c) => {
        pod(c, "x/a").ips = ["10.244.1.999"];
      }),
    );
    expect(() => compiler.update({ ...broken, policies: other })).toThrow(/IPv4/);
    expect(renderNft(compiler.ruleset)).toBe(renderNft(nft(e2eCluster(), other)));
    const relabel = oneNode(
      e2eCluster((c) => {
        pod(c, "x/a").labels.extra = "1";
      }),
    );
    expect(compiler.update({ ...relabel, policies: other })).toEqual({ kind: "none", commands: [] });
  });
});
