/**
 * Stale state: what surviving nodes still hold that points at a departed (or replaced) node.
 */
import { summarizeProblems } from "./harness.ts";
import type { Harness } from "./harness.ts";

export interface Departed {
  name: string;
  address: string;
  podAddresses: string[];
}

export function departedOf(h: Harness, name: string): Departed {
  return {
    name,
    address: h.cluster.node(name).info.underlay[0]?.address ?? "",
    podAddresses: h.cluster.pods().filter((p) => p.node === name).flatMap((p) => p.addresses),
  };
}

/** Routes, FDB entries and neighbours that still point at a departed node. */
export function staleProblems(h: Harness, gone: Departed): string[] {
  const problems: string[] = [];
  for (const node of h.cluster.nodes()) {
    if (!node.alive || node.name === gone.name) continue;
    const dp = h.cluster.dataplane(node.name);
    for (const r of dp.routes) {
      if (r.via === gone.address) problems.push(`node ${node.name} still routes ${r.dst} via ${r.via}, the address of departed node ${gone.name}`);
      else if (gone.podAddresses.some((a) => r.dst === `${a}/32` || r.dst === `${a}/128`)) {
        problems.push(`node ${node.name} still has a host route ${r.dst} to a pod of departed node ${gone.name}`);
      }
    }
    for (const f of dp.fdb) {
      if (f.dst === gone.address) problems.push(`node ${node.name} still has FDB entry ${f.mac} on ${f.dev} -> ${f.dst} (departed node ${gone.name})`);
    }
  }
  return problems;
}

/** staleProblems joined for a converge() condition; undefined when nothing is stale. */
export function staleProblem(h: Harness, gone: Departed): string | undefined {
  const stale = staleProblems(h, gone);
  return stale.length > 0 ? summarizeProblems(stale) : undefined;
}
