// Enforcement on the real kernel: the e2e model as network namespaces (one node namespace, nine
// routed pod namespaces), the compiled nftables ruleset loaded with `nft -f` in the node namespace,
// and every pair probed with real TCP and UDP connections on ports 80 and 81. The kernel's matrix
// must equal the evaluator's (and the hand-written table) for every case of the table, and an
// element-only update (pod or namespace relabelled) must move the kernel to the new matrix.
// SCTP: probed where the kernel has it is not possible with Node's sockets; the test reports
// which, and asserts that it reported it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NftNodeCompiler, PolicyEvaluator, compileNft, nftUpdate, replaceTableScript, type Cluster, type NetworkPolicy } from "../src/index.ts";
import { CASES } from "./cases.ts";
import { POD_IDS, e2eCluster, expectedFor, policiesOf, showTable, type MatrixCase } from "./e2e-model.ts";
import { KernelLab, checkRequirements, cleanupLeftovers, sctpSupport } from "./kernel-lab.ts";

const NODE = "kernel-node";
const KERNEL_PROBES = [
  { protocol: "TCP", port: 80 },
  { protocol: "TCP", port: 81 },
  { protocol: "UDP", port: 80 },
  { protocol: "UDP", port: 81 },
] as const;

function onOneNode(c: Cluster): Cluster {
  return { ...c, pods: c.pods.map((p) => ({ ...p, node: NODE })) };
}

function ruleset(cluster: Cluster, policies: NetworkPolicy[]) {
  return compileNft({ model: { ...onOneNode(cluster), policies }, node: NODE, families: [4] });
}

let lab: KernelLab;
let sctpReport: string | undefined;

beforeAll(async () => {
  checkRequirements();
  const removed = cleanupLeftovers();
  if (removed.length > 0) console.log(`kernel test: removed ${removed.length} namespaces left by crashed runs: ${removed.join(", ")}`);
  const cluster = e2eCluster();
  lab = new KernelLab(cluster.pods.map((p) => ({ id: `${p.namespace}/${p.name}`, ip: p.ips[0]!, hostIf: p.hostIf! })));
  await lab.setUp();
}, 120_000);

afterAll(() => {
  lab?.tearDown();
});

async function checkKernel(c: MatrixCase, cluster: Cluster, policies: NetworkPolicy[]): Promise<void> {
  const ev = new PolicyEvaluator({ ...cluster, policies });
  const matrices = await Promise.all(KERNEL_PROBES.map((probe) => lab.matrix(probe.protocol === "TCP" ? "tcp" : "udp", probe.port)));
  KERNEL_PROBES.forEach((probe, k) => {
    const got = matrices[k]!;
    const label = `${probe.protocol}/${probe.port}`;
    expect(showTable(got), `kernel vs evaluator ${label}`).toBe(showTable(ev.matrix(probe, POD_IDS).allowed));
    expect(showTable(got), `kernel vs table ${label}`).toBe(showTable(expectedFor(c, probe)));
  });
}

describe("kernel (nftables in network namespaces) enforces the evaluator's matrices", () => {
  it("reports whether SCTP can be probed on this kernel", () => {
    const s = sctpSupport();
    sctpReport = s.supported
      ? `SCTP: ${s.reason}, but Node has no SCTP sockets, so SCTP cells are checked in the evaluator and the sim only; the SCTP rules still load (cases with SCTP ports are among the kernel cases)`
      : `SCTP: not probed on the kernel: ${s.reason}; SCTP cells are checked in the evaluator and the sim only`;
    console.log(`kernel test: ${sctpReport}`);
    expect(sctpReport).toMatch(/^SCTP: /);
  });

  for (const c of CASES) {
    it(
      c.name,
      async () => {
        const cluster = e2eCluster(c.edit);
        const policies = policiesOf(c);
        lab.nft(replaceTableScript(ruleset(cluster, policies)));
        await checkKernel(c, cluster, policies);
      },
      60_000,
    );
  }

  // Each relabel: the policies and final state of `after`; the state before is the model without
  // after's edit, whose matrix is the hand-written one of `beforeTable`.
  const relabels: { name: string; after: string; beforeTable: string }[] = [
    {
      name: "a pod relabelled into a peer selector (x/b gets role=client)",
      after: "pod label update: after x/b gets role=client, x/b reaches x/a",
      beforeTable: "namespace label update: before y is labelled, nothing matches the namespaceSelector",
    },
    {
      name: "a namespace relabelled into a namespaceSelector (y gets ns2=updated)",
      after: "namespace label update: after y gets ns2=updated, y reaches x/a",
      beforeTable: "namespace label update: before y is labelled, nothing matches the namespaceSelector",
    },
    {
      name: "a pod relabelled into a policy's podSelector (x/a gets target=isolated)",
      after: "pod label update: after x/a gets target=isolated, x/a is isolated",
      beforeTable: "pod label update: a policy selecting no pod isolates nothing",
    },
  ];
  for (const r of relabels) {
    it(`element-only update: ${r.name}`, async () => {
      const after = CASES.find((k) => k.name === r.after)!;
      const before = CASES.find((k) => k.name === r.beforeTable)!;
      const policies = policiesOf(after);
      const beforeCluster = e2eCluster();
      const afterCluster = e2eCluster(after.edit);
      const compiler = new NftNodeCompiler({ model: { ...onOneNode(beforeCluster), policies }, node: NODE, families: [4] });
      lab.nft(replaceTableScript(compiler.ruleset));
      await checkKernel(before, beforeCluster, policies);
      const update = compiler.update({ ...onOneNode(afterCluster), policies });
      expect(update.kind).toBe("elements");
      expect(update.commands.every((cmd) => /^(add|delete) element inet cnikit-netpol /.test(cmd))).toBe(true);
      lab.nft(`${update.commands.join("\n")}\n`);
      await checkKernel(after, afterCluster, policies);
    }, 60_000);
  }

  it("the kernel holds what the update commands promise (listing after an element update matches a fresh load)", () => {
    const c = CASES.find((k) => k.name === "named ingress port resolves per destination pod (web: y/a 80, y/b 81, y/c none)")!;
    const policies = policiesOf(c);
    const plain = ruleset(e2eCluster(), policies);
    const edited = ruleset(e2eCluster(c.edit), policies);
    lab.nft(replaceTableScript(plain));
    const update = nftUpdate(plain, edited);
    expect(update.kind).toBe("elements");
    lab.nft(`${update.commands.join("\n")}\n`);
    const afterUpdate = lab.listTable();
    lab.nft(replaceTableScript(edited));
    expect(afterUpdate).toBe(lab.listTable());
  });
});
