/**
 * @cnikit/weave — a Weave-Net-like backend: no datastore for the network, a gossip mesh of peers
 * found through membership, one address range split among them by a CRDT ring (agreed by
 * consensus, shared by donation), a flat L2 overlay over a kernel vxlan port (fast datapath) or a
 * userspace UDP sleeve, optional encryption (X25519 + password → ChaCha20-Poly1305, on the
 * sleeve), and NetworkPolicy with weave-npc's semantics. Config: the weave-kube DaemonSet's own
 * environment (a `{NAME: value}` object or the container's `env:` list). See DESIGN.md.
 */
import { defineBackend } from "@cnikit/core";
import type { NetworkSummary } from "@cnikit/core";
import { createWeaveAgent } from "./agent.ts";
import { weaveUserspaceDatapath } from "./datapath.ts";
import { WEAVE, parseWeaveConfig } from "./config.ts";
import type { WeaveConfig } from "./config.ts";
import { preferredDatapath } from "./plan.ts";

/**
 * A joining node's pods are reachable once every peer's connection to it is established (the
 * mesh's 500 ms heartbeats until established, a second or two of dialling and back-off) and it has
 * space (a donation: one unicast round trip): well inside 10 s of virtual time.
 */
export const CONVERGENCE_MS = 10_000;
/** A crashed peer is dead after 6 missed heartbeats at 10 s (Weave's 60 s), plus a heartbeat of slack. */
export const CRASH_DETECTION_MS = 70_000;

/** What a config promises: pod addresses from the default subnet, masquerade to the outside, its datapath, encrypted when a password is set. */
export function summarize(config: WeaveConfig): NetworkSummary {
  return {
    podRanges: [config.defaultSubnet],
    natOutgoing: true,
    encapsulations: [preferredDatapath(config) === "fastdp" ? "vxlan" : "sleeve"],
    convergenceMs: CONVERGENCE_MS,
    crashDetectionMs: CRASH_DETECTION_MS,
    encrypted: config.password !== undefined,
  };
}

/** The Weave-like backend. Nothing is registered on import. */
export const weave = defineBackend<WeaveConfig>({
  name: WEAVE,
  capabilities: { networkPolicy: true, encryption: true, encapsulations: ["vxlan", "sleeve"], families: [4] },
  parseConfig: parseWeaveConfig,
  summarize,
  createAgent: createWeaveAgent,
  userspaceDatapath: weaveUserspaceDatapath,
});

export { parseWeaveConfig, WEAVE } from "./config.ts";
export type { WeaveConfig } from "./config.ts";
export { createWeaveAgent, WeaveAgent } from "./agent.ts";
export { weaveFixtures, conformance } from "./fixtures.ts";
