/**
 * The e2e model in @cnikit/sim: routed (Calico-style) pods with /32 addresses behind their node
 * (proxy ARP on the host side, default route via 169.254.1.1), /32 routes to local pods on their
 * veth and to remote pods via the owning node's underlay address, and the compiled filters of each
 * node's pods in its dataplane.
 */
import { emptyDataplane, type NodeDataplane, type NodeInfo, type PodInterface } from "@cnikit/core";
import { SimFabric, singleSubnetTopology } from "@cnikit/sim";
import { compileFilters, hostIfOf, podKeyOf, type PolicyModel } from "../src/index.ts";

function mac(n: number): string {
  return ["02", "cc", "00", "00", (n >> 8) & 255, n & 255].map((x) => (typeof x === "string" ? x : x.toString(16).padStart(2, "0"))).join(":");
}

/**
 * Builds the fabric: pods go to their `node` (or all to `node-a` when `oneNode`), every node's
 * dataplane carries `compileFilters` for that node.
 */
export function simFabric(model: PolicyModel, options: { oneNode?: boolean } = {}): { fabric: SimFabric; dataplanes: NodeDataplane[] } {
  const fabric = new SimFabric(singleSubnetTopology());
  const nodeOf = (node: string | undefined) => (options.oneNode ? "node-a" : (node ?? "node-a"));
  const names = [...new Set(model.pods.map((p) => nodeOf(p.node)))].sort();
  const infos = new Map<string, NodeInfo>();
  for (const name of names) infos.set(name, fabric.addNode({ name, subnet: "a" }));
  const dataplanes = names.map((name) => {
    const dp = emptyDataplane(name);
    dp.sysctls = { ipv4Forwarding: true, proxyArp: [] };
    model.pods.forEach((p, i) => {
      const ip = p.ips[0]!;
      const here = nodeOf(p.node);
      if (here !== name) {
        dp.routes.push({ dst: `${ip}/32`, via: infos.get(here)!.underlay[0]!.address });
        return;
      }
      const key = podKeyOf(p);
      const pif: PodInterface = {
        key,
        containerId: key.split("/")[0]!,
        ifName: "eth0",
        namespace: p.namespace,
        podName: p.name,
        labels: p.labels,
        hostIf: hostIfOf(p),
        mac: mac(i + 1),
        mtu: 1500,
        addresses: [`${ip}/32`],
        routes: [
          { dst: "169.254.1.1/32", scopeLink: true },
          { dst: "0.0.0.0/0", via: "169.254.1.1" },
        ],
      };
      dp.pods.push(pif);
      dp.sysctls.proxyArp!.push(pif.hostIf);
      dp.routes.push({ dst: `${ip}/32`, dev: pif.hostIf });
    });
    dp.filters = compileFilters({ model: options.oneNode ? { ...model, pods: model.pods.map((p) => ({ ...p, node: "node-a" })) } : model, node: name });
    fabric.setDataplane(name, dp);
    return dp;
  });
  return { fabric, dataplanes };
}
