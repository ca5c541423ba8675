/**
 * What a broken agent's one-time view of its peers holds: the underlay addresses a store listing
 * names (flannel: the PublicIP of every subnet lease; calico: the address of every node record).
 */
import type { Datastore } from "@cnikit/core";
import { NODE_PREFIX } from "@cnikit/calico";
import { SUBNET_PREFIX } from "@cnikit/flannel";
import { decodeLease } from "@cnikit/flannel/internal";

/** The underlay addresses of the VTEPs a store listing names. */
export type PeerListing = (store: Datastore) => Promise<Set<string>>;

export const flannelVteps: PeerListing = async (store) => {
  const known = new Set<string>();
  for (const kv of (await store.list(SUBNET_PREFIX)).items) {
    const ip = decodeLease(kv)?.attrs.PublicIP;
    if (ip !== undefined) known.add(ip);
  }
  return known;
};

export const calicoNodeAddresses: PeerListing = async (store) => {
  const known = new Set<string>();
  for (const kv of (await store.list(NODE_PREFIX)).items) {
    try {
      const address = (JSON.parse(kv.value) as { address?: unknown }).address;
      if (typeof address === "string") known.add(address);
    } catch {
      // a record that does not parse names no node
    }
  }
  return known;
};
