/**
 * @cnikit/canal — Canal: flannel's network (net-conf.json unchanged, one leased subnet per node,
 * vxlan or host-gw, pods on `cni0`) with Kubernetes NetworkPolicy enforced on every node (Calico's
 * policy model: the kit's policy component of @cnikit/netpol). Composed from flannel's agent and
 * the policy component, see agent.ts and DESIGN.md.
 */
import { defineBackend } from "@cnikit/core";
import { flannel } from "@cnikit/flannel";
import type { FlannelConfig } from "@cnikit/flannel";
import { CANAL, createCanalAgent } from "./agent.ts";

/**
 * The Canal backend. Its config is flannel's net-conf.json (flannel's parser) and its promises
 * are flannel's (flannel's `summarize` and `topologyNeeds`: host-gw on one L2 subnet, and whatever
 * else flannel's backend says of a config); it adds `networkPolicy` to flannel's capabilities.
 * Nothing is registered on import.
 */
export const canal = defineBackend<FlannelConfig>({
  ...flannel,
  name: CANAL,
  capabilities: { ...flannel.capabilities, networkPolicy: true },
  createAgent: createCanalAgent,
});

// The public surface: the backend, the agent factory (for hosts that compose further), the pod
// directory's prefix (an interop contract: tools may read it), and the fixtures.
export { createCanalAgent, CANAL_POD_PREFIX } from "./agent.ts";
export { canalFixtures, conformance } from "./fixtures.ts";
