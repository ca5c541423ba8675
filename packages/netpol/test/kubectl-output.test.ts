// parseCluster over what kubectl prints: `kubectl get ns -o yaml` and `kubectl get pods -A -o yaml`
// (kind: List, PodList/NamespaceList, or a multi-document stream). hostNetwork pods (their address is
// their node's) and finished pods (Succeeded/Failed: their old IP may be a running pod's) are left
// out of the view and listed in `ignored` with the reason; the duplicate-IP check holds for the rest.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { PolicyEvaluator, compileFilters, parseCluster, parseClusterBatch, parsePolicies } from "../src/index.ts";
import { main } from "../src/cli.ts";

const FIX = fileURLToPath(new URL("./fixtures/", import.meta.url));
const NS = readFileSync(`${FIX}kubectl-ns.yaml`, "utf8");
const PODS = readFileSync(`${FIX}kubectl-pods.yaml`, "utf8");
const BOTH = `${NS}---\n${PODS}`;

/** The error `fn` throws (duck-typed), or a failure when it answers. */
function refusal(fn: () => unknown): { code: unknown; field: unknown; rule: string; message: string } {
  try {
    fn();
  } catch (err) {
    const e = err as { code?: unknown; field?: unknown; rule?: unknown; message?: unknown };
    return { code: e.code, field: e.field, rule: String(e.rule), message: String(e.message) };
  }
  throw new Error("expected a refusal, got an answer");
}

const ids = (pods: readonly { namespace: string; name: string }[]) => pods.map((p) => `${p.namespace}/${p.name}`);
const RUNNING = ["kube-system/coredns-5d78c9869d-7h6fz", "shop/db-0", "shop/web-6b7f9c8d5-2kq9z", "shop/web-6b7f9c8d5-lm4tx"];

describe("parseCluster: kubectl get ns / get pods -A -o yaml", () => {
  it("reads both Lists: running and pending pods in the view, hostNetwork and finished pods ignored with the reason", () => {
    const c = parseCluster(BOTH, "cluster.yaml");
    expect(c.namespaces.map((n) => n.name)).toEqual(["batch", "default", "kube-node-lease", "kube-system", "shop"]);
    expect(c.namespaces.find((n) => n.name === "shop")?.labels).toEqual({ "kubernetes.io/metadata.name": "shop", team: "shop" });
    expect(ids(c.pods)).toEqual(RUNNING);
    expect(c.pods.map((p) => [p.ips, p.node])).toEqual([
      [["10.244.0.3"], "node-a"],
      [["10.244.0.9", "fd00:10:244::9"], "node-a"],
      [["10.244.1.7"], "node-b"],
      [[], "node-b"],
    ]);
    expect(c.pods[0]!.ports).toEqual([
      { name: "dns", containerPort: 53, protocol: "UDP" },
      { name: "dns-tcp", containerPort: 53, protocol: "TCP" },
      { name: "metrics", containerPort: 9153, protocol: "TCP" },
    ]);
    expect(c.ignored.map((p) => [`${p.namespace}/${p.name}`, p.reason, p.ips, p.node, p.source])).toEqual([
      ["batch/report-28391030-9fq2c", "Failed", ["10.244.0.3"], "node-a", "cluster.yaml#2 items[0]"],
      ["batch/report-28391040-x7k2m", "Succeeded", ["10.244.1.7"], "node-b", "cluster.yaml#2 items[1]"],
      ["kube-system/etcd-node-a", "hostNetwork", ["172.18.0.2"], "node-a", "cluster.yaml#2 items[3]"],
      ["kube-system/kube-proxy-7xk2p", "hostNetwork", ["172.18.0.2"], "node-a", "cluster.yaml#2 items[4]"],
      ["kube-system/kube-proxy-q8d4n", "hostNetwork", ["172.18.0.3"], "node-b", "cluster.yaml#2 items[5]"],
    ]);
    expect(c.ignored[2]!.message).toMatch(/^kube-system\/etcd-node-a \(cluster\.yaml#2 items\[3\]\) left out: spec\.hostNetwork: .*node's network namespace/);
    expect(c.ignored[1]!.message).toContain("status.phase Succeeded: a finished pod holds no IP");
  });

  it("reads the same from PodList/NamespaceList kinds and from a stream of single objects", () => {
    const want = parseCluster(BOTH, "c.yaml");
    const kinds = `${NS.replace(/^kind: List$/m, "kind: NamespaceList")}---\n${PODS.replace(/^kind: List$/m, "kind: PodList")}`;
    expect(kinds).toContain("kind: PodList");
    const typed = parseCluster(kinds, "c.yaml");
    expect({ ...typed, ignored: typed.ignored.map((p) => p.reason) }).toEqual({ ...want, ignored: want.ignored.map((p) => p.reason) });
    const items = [...(parse(NS) as { items: unknown[] }).items, ...(parse(PODS) as { items: unknown[] }).items];
    const stream = parseCluster(items.map((i) => stringify(i)).join("---\n"), "c.yaml");
    expect(ids(stream.pods)).toEqual(RUNNING);
    expect(stream.pods).toEqual(want.pods);
    expect(stream.ignored.map((p) => [p.name, p.source])).toEqual([
      ["report-28391030-9fq2c", "c.yaml#6"],
      ["report-28391040-x7k2m", "c.yaml#7"],
      ["etcd-node-a", "c.yaml#9"],
      ["kube-proxy-7xk2p", "c.yaml#10"],
      ["kube-proxy-q8d4n", "c.yaml#11"],
    ]);
  });

  it("still refuses two pods of the network with one IP, naming both pods and their documents", () => {
    // The Completed pod as if it still ran: now it and web hold 10.244.1.7.
    const running = BOTH.replace("    phase: Succeeded\n", "    phase: Running\n");
    const e = refusal(() => parseCluster(running, "cluster.yaml"));
    expect(e).toMatchObject({ code: 7, field: "status.podIPs" });
    expect(e.rule).toContain("address 10.244.1.7 of pod shop/web-6b7f9c8d5-2kq9z is also pod batch/report-28391040-x7k2m's");
    expect(e.message).toContain("cluster.yaml#2 items[7] (Pod shop/web-6b7f9c8d5-2kq9z)");
    // A hostNetwork pod without the flag: kube-proxy's address is etcd's (both the node's).
    const noFlag = BOTH.replace(
      "    hostNetwork: true\n    nodeName: node-a\n    priorityClassName: system-node-critical\n    restartPolicy: Always\n    serviceAccountName: kube-proxy\n",
      "    nodeName: node-a\n    priorityClassName: system-node-critical\n    restartPolicy: Always\n    serviceAccountName: kube-proxy\n",
    );
    expect(noFlag).not.toBe(BOTH);
    const f = refusal(() =>
      parseCluster(
        noFlag.replace(
          "    hostNetwork: true\n    nodeName: node-a\n    priorityClassName: system-node-critical\n    restartPolicy: Always\n    tolerations:\n    - effect: NoExecute",
          "    nodeName: node-a\n    priorityClassName: system-node-critical\n    restartPolicy: Always\n    tolerations:\n    - effect: NoExecute",
        ),
        "cluster.yaml",
      ),
    );
    expect(f.rule).toContain("address 172.18.0.2 of pod kube-system/kube-proxy-7xk2p is also pod kube-system/etcd-node-a's");
  });

  it("needs the namespaces: kubectl get pods alone names the first undeclared one", () => {
    const e = refusal(() => parseCluster(PODS, "pods.yaml"));
    expect(e).toMatchObject({ code: 7, field: "metadata.namespace" });
    expect(e.rule).toContain("names namespace kube-system, which the cluster does not declare");
  });

  it("refuses a podIPs entry for a pod left out, with the reason, and an unknown phase or a non-boolean hostNetwork", () => {
    const e = refusal(() => parseCluster(BOTH, "cluster.yaml", { podIPs: { "kube-system/kube-proxy-7xk2p": ["10.244.0.50"] } }));
    expect(e).toMatchObject({ code: 7, field: 'podIPs["kube-system/kube-proxy-7xk2p"]' });
    expect(e.rule).toContain("left out of the cluster view (hostNetwork)");
    // A podIPs entry gives the Pending pod its address.
    expect(parseCluster(BOTH, "cluster.yaml", { podIPs: { "shop/web-6b7f9c8d5-lm4tx": ["10.244.1.8"] } }).pods[3]!.ips).toEqual(["10.244.1.8"]);
    expect(refusal(() => parseCluster(BOTH.replace("    phase: Pending\n", "    phase: Waiting\n"), "c.yaml"))).toMatchObject({
      field: "status.phase",
      rule: expect.stringContaining('supported values: "Pending", "Running", "Succeeded", "Failed", "Unknown"'),
    });
    expect(refusal(() => parseCluster(BOTH.replace("    hostNetwork: true\n    nodeName: node-b", '    hostNetwork: "yes"\n    nodeName: node-b'), "c.yaml"))).toMatchObject({
      field: "spec.hostNetwork",
      rule: "must be a boolean",
    });
  });

  it("policies: hostNetwork pods are not selected, and their address is matched by ipBlock only", () => {
    const cluster = parseCluster(BOTH, "cluster.yaml");
    const policies = parsePolicies(
      [
        // db: from web pods, and from kube-system's pods (selects coredns; not kube-proxy, which is the node).
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: db, namespace: shop}\nspec: {podSelector: {matchLabels: {app: db}}, ingress: [{from: [{podSelector: {matchLabels: {app: web}}}, {namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}}]}]}\n",
        // every kube-system pod isolated for ingress, admitting only the node network 172.18.0.0/16.
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: nodes-only, namespace: kube-system}\nspec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 172.18.0.0/16}}]}]}\n",
      ].join("---\n"),
      "policies.yaml",
    );
    const ev = new PolicyEvaluator({ ...cluster, policies });
    const probe = { protocol: "TCP", port: 5432 } as const;
    expect(ev.verdict({ from: "shop/web-6b7f9c8d5-2kq9z", to: "shop/db-0", ...probe }).allowed).toBe(true);
    expect(ev.verdict({ from: "kube-system/coredns-5d78c9869d-7h6fz", to: "shop/db-0", ...probe }).allowed).toBe(true);
    // kube-proxy's traffic is its node's: 172.18.0.2 is no pod, so the namespaceSelector does not admit it.
    expect(ev.verdict({ from: "172.18.0.2", to: "shop/db-0", ...probe })).toMatchObject({ allowed: false, src: "172.18.0.2" });
    expect(refusal(() => ev.verdict({ from: "kube-system/kube-proxy-7xk2p", to: "shop/db-0", ...probe }))).toMatchObject({ field: "from" });
    // The node address is admitted to coredns by the ipBlock; a pod is not.
    expect(ev.verdict({ from: "172.18.0.3", to: "kube-system/coredns-5d78c9869d-7h6fz", protocol: "UDP", port: 53 }).allowed).toBe(true);
    expect(ev.verdict({ from: "shop/web-6b7f9c8d5-2kq9z", to: "kube-system/coredns-5d78c9869d-7h6fz", protocol: "UDP", port: 53 }).allowed).toBe(false);
    // node-a's filters: coredns and db only (etcd and kube-proxy run there but are not pods of the network);
    // db's peers: web's address (the pending replica has none) and coredns' — never a node's.
    const filters = compileFilters({ model: { ...cluster, policies }, node: "node-a" });
    expect(filters.map((f) => `${f.pod} ${f.direction}`)).toEqual(["kube-system/coredns-5d78c9869d-7h6fz ingress", "shop/db-0 ingress"]);
    expect(JSON.stringify(filters[1]!.rules)).not.toContain("172.18.");
    expect(JSON.stringify(filters[1]!.rules)).toContain("10.244.1.7/32");
    expect(JSON.stringify(filters[1]!.rules)).toContain("10.244.0.3/32");
  });

  it("the CLI notes each pod it left out on stderr and keeps stdout the result", async () => {
    const out: string[] = [];
    const err: string[] = [];
    const dir = mkdtempSync(join(tmpdir(), "netpol-kubectl-"));
    writeFileSync(join(dir, "cluster.yaml"), BOTH);
    writeFileSync(join(dir, "policies.yaml"), "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: shop}\nspec: {podSelector: {}}\n");
    const status = await main(["filters", "--policies", join(dir, "policies.yaml"), "--cluster", join(dir, "cluster.yaml"), "--node", "node-b"], { out: (t) => out.push(t), err: (t) => err.push(t) });
    expect(status).toBe(0);
    const notes = err
      .join("")
      .split("\n")
      .filter((l) => l.startsWith("cnikit-netpol: note: "));
    expect(notes).toHaveLength(5);
    expect(notes[3]).toContain("kube-system/kube-proxy-7xk2p");
    expect(JSON.parse(out.join("")).map((f: { pod: string }) => f.pod)).toEqual(["shop/web-6b7f9c8d5-2kq9z", "shop/web-6b7f9c8d5-lm4tx"]);
  });
});

describe("parseClusterBatch", () => {
  it("gives what parseCluster gives for a valid input, with no errors", () => {
    expect(parseClusterBatch(BOTH, "cluster.yaml")).toEqual({ ...parseCluster(BOTH, "cluster.yaml"), errors: [] });
  });

  it("keeps every valid object and names each refused one: bad labels, undeclared or refused namespace, a taken IP, a bad podIPs entry, unreadable text", () => {
    const extra = [
      "apiVersion: v1\nkind: Namespace\nmetadata: {name: lab, labels: {'bad key!': x}}\n",
      "apiVersion: v1\nkind: Pod\nmetadata: {name: p1, namespace: lab}\nspec: {containers: [{name: c, image: x}]}\nstatus: {phase: Running, podIP: 10.244.9.1}\n",
      "apiVersion: v1\nkind: Pod\nmetadata: {name: clone, namespace: shop}\nspec: {nodeName: node-a, containers: [{name: c, image: x}]}\nstatus: {phase: Running, podIP: 10.244.0.9}\n",
      "apiVersion: v1\nkind: Pod\nmetadata: {name: odd, namespace: shop}\nspec: {containers: [{name: c, image: x}]}\nstatus: {phase: Sleeping}\n",
      "apiVersion: [\n",
      "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n",
      "namespaces: [{name: extra}, {name: Bad}]\npods: [{namespace: extra, name: a, ips: [10.244.9.9]}, {namespace: extra, name: b, ips: [10.244.9.9]}]\n",
    ];
    const text = [BOTH, ...extra].join("---\n");
    const batch = parseClusterBatch(text, "c.yaml", { podIPs: { "shop/nobody": ["10.1.1.1"], "shop/web-6b7f9c8d5-lm4tx": ["10.244.1.8"] } });
    expect(ids(batch.pods)).toEqual([...RUNNING, "extra/a"]);
    expect(batch.pods[3]!.ips).toEqual(["10.244.1.8"]);
    expect(batch.namespaces.map((n) => n.name)).toEqual(["batch", "default", "kube-node-lease", "kube-system", "shop", "extra"]);
    expect(batch.ignored).toHaveLength(5);
    expect(batch.errors.map((e) => [e.kind, e.namespace, e.name, e.source, e.field])).toEqual([
      ["(document)", undefined, undefined, "c.yaml#7", "(document)"],
      ["Namespace", undefined, "lab", "c.yaml#3", "metadata.labels"],
      ["Pod", "shop", "odd", "c.yaml#6", "status.phase"],
      ["Service", "shop", "web", "c.yaml#8", "kind"],
      ["(options)", undefined, undefined, "c.yaml (options)", 'podIPs["shop/nobody"]'],
      ["Namespace", undefined, "Bad", "c.yaml#9", "namespaces[1].name"],
      ["Pod", "lab", "p1", "c.yaml#4", "metadata.namespace"],
      ["Pod", "shop", "clone", "c.yaml#5", "status.podIPs"],
      ["Pod", "extra", "b", "c.yaml#9", "pods[1].ips"],
    ]);
    expect(batch.errors[7]!.rule).toContain("address 10.244.0.9 of pod shop/clone is also pod shop/db-0's (c.yaml#2 items[6])");
    // The strict parser's error is the first of them, word for word.
    expect(refusal(() => parseCluster(text, "c.yaml", { podIPs: { "shop/nobody": ["10.1.1.1"] } })).message).toBe(batch.errors[0]!.message);
    expect(refusal(() => parseCluster([BOTH, ...extra.filter((x) => !x.startsWith("apiVersion: ["))].join("---\n"), "c.yaml")).message).toBe(batch.errors[1]!.message);
  });
});
