/**
 * Section G's pair (conformance.md G, check `encryption.no-plaintext`): flannel's vxlan shape with
 * its VXLAN device replaced by a Weave-style sleeve (userspace UDP on 6783, peers from the same FDB
 * entries) and `capabilities.encryption` claimed.
 *
 *  - `sleeveEncrypted`, the unbroken base: every sleeve link has `encrypted: true`;
 *  - `sleevePlaintext`, broken: the same, but its sleeve links send `encrypted: false` — it claims
 *    encryption and carries pod payloads in plaintext across the underlay.
 *
 * The sleeve's larger overhead (ENCAP_OVERHEAD.sleeve vs .vxlan) is taken off the tunnel's, the
 * bridge's and the pods' MTU, so the only difference between the two is the encryption.
 */
import { ENCAP_OVERHEAD, defineBackend, fixtureConfig } from "@cnikit/core";
import type { Backend, NodeAgent, NodeDataplane } from "@cnikit/core";
import { flannel, flannelFixtures } from "@cnikit/flannel";
import type { BrokenVariant } from "./types.ts";
import { WrappedAgent, copy, wrapBackend } from "./wrap.ts";

/** Weave's sleeve port. */
const SLEEVE_PORT = 6783;
const EXTRA = ENCAP_OVERHEAD.sleeve - ENCAP_OVERHEAD.vxlan;

class SleeveAgent extends WrappedAgent {
  constructor(
    inner: NodeAgent,
    private readonly encrypted: boolean,
  ) {
    super(inner);
  }

  protected override transform(dp: NodeDataplane): NodeDataplane {
    const out = copy(dp);
    out.links = out.links.map((l) => {
      if (l.kind === "vxlan") {
        const { name, mac, master, mtu } = l;
        return {
          kind: "sleeve",
          name,
          port: SLEEVE_PORT,
          encrypted: this.encrypted,
          ...(mac !== undefined ? { mac } : {}),
          ...(master !== undefined ? { master } : {}),
          ...(mtu !== undefined ? { mtu: mtu - EXTRA } : {}),
        };
      }
      return l.kind === "bridge" && l.mtu !== undefined ? { ...l, mtu: l.mtu - EXTRA } : l;
    });
    for (const p of out.pods) p.mtu -= EXTRA;
    return out;
  }
}

function sleeveOf(name: string, encrypted: boolean): Backend<unknown> {
  const wrapped = wrapBackend(flannel as Backend<unknown>, name, { agent: (inner) => new SleeveAgent(inner, encrypted) });
  return defineBackend({ ...wrapped, capabilities: { ...wrapped.capabilities, encryption: true } });
}

/** flannel over an encrypting sleeve: the correct base of the variant below. */
export const sleeveEncrypted = sleeveOf("selftest-sleeve-encrypted", true);
/** Broken: claims encryption, sends pod payloads in plaintext over the sleeve. */
export const sleevePlaintext = sleeveOf("broken-sleeve-plaintext", false);

export const encryptionVariants: BrokenVariant[] = [
  {
    label: "claims encryption, sleeve sends plaintext",
    backend: sleevePlaintext,
    base: sleeveEncrypted,
    shape: "vxlan+fdb",
    config: fixtureConfig(flannelFixtures.configs, "vxlan"),
    baseLabel: "flannel vxlan over an encrypted sleeve",
    targets: ["encryption.no-plaintext"],
    controls: ["reach.pod-to-pod.cross-node", "ipam.unique"],
  },
];
