/**
 * Peer identity, as in weaveworks/mesh: a 48-bit peer name printed like a MAC
 * ("aa:bb:cc:dd:ee:ff"), the nickname (the node name, which the transport dials), a random 64-bit
 * UID per start (a restart is a new UID under the same name), a version bumped on every change of
 * the peer's own record, and a 12-bit short id (fast datapath VXLAN headers).
 *
 * The name is created once, at random, and persisted in the agent's local datastore under
 * `PEER_NAME_KEY`, so a restarted agent keeps its name (duplicate names are catastrophic: two
 * peers under one name fight over one record).
 */
import { ConfigError, fnv1a32 } from "@cnikit/core";
import type { Datastore } from "@cnikit/core";

/** Where the peer name lives in the agent's local datastore. */
export const PEER_NAME_KEY = "weave/mesh/peer-name";

/** Short ids are 12-bit (0 … 4095): also the bound on the number of peers a mesh tracks. */
export const SHORT_ID_BITS = 12;
export const MAX_PEERS = 1 << SHORT_ID_BITS;

export interface PeerIdentity {
  /** 48-bit peer name, printed like a MAC: "aa:bb:cc:dd:ee:ff". */
  name: string;
  /** The node name (what the transport dials). */
  nickname: string;
  /** 64-bit random id of this start, 16 lowercase hex digits. */
  uid: string;
  /** Bumped on each change of the peer's own record. */
  version: number;
  /** 12-bit id (0 … 4095), unique in the mesh. */
  shortId: number;
}

const NAME_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const UID_RE = /^[0-9a-f]{16}$/;

/** Whether `text` is a peer name ("aa:bb:cc:dd:ee:ff", lowercase). */
export function isPeerName(text: unknown): text is string {
  return typeof text === "string" && NAME_RE.test(text);
}

/** Whether `text` is a UID (16 lowercase hex digits). */
export function isUid(text: unknown): text is string {
  return typeof text === "string" && UID_RE.test(text);
}

function hexByte(n: number): string {
  return n.toString(16).padStart(2, "0");
}

/** A fresh random peer name: locally administered, unicast (first octet xxxxxx10). */
export function randomPeerName(random: () => number): string {
  const bytes = Array.from({ length: 6 }, () => Math.floor(random() * 256) & 0xff);
  bytes[0] = (bytes[0]! & 0xfc) | 0x02;
  return bytes.map(hexByte).join(":");
}

/** A fresh 64-bit UID as 16 hex digits. */
export function randomUid(random: () => number): string {
  let out = "";
  for (let i = 0; i < 8; i++) out += hexByte(Math.floor(random() * 256) & 0xff);
  return out;
}

/** The preferred short id of a name (a hash); collisions are resolved by `resolveShortId`. */
export function preferredShortId(name: string): number {
  return fnv1a32(name) & (MAX_PEERS - 1);
}

/**
 * The short id a peer takes given the ids the others hold: its preferred id when free, else the
 * lowest free one. Of two peers claiming one id, the one whose name sorts first keeps it (both sides
 * decide alike), the other moves.
 */
export function resolveShortId(self: { name: string; shortId: number }, others: Iterable<{ name: string; shortId: number }>): number {
  const taken = new Map<number, string>();
  for (const o of others) {
    if (o.name === self.name) continue;
    const holder = taken.get(o.shortId);
    if (holder === undefined || o.name < holder) taken.set(o.shortId, o.name);
  }
  const holder = taken.get(self.shortId);
  if (holder === undefined || holder > self.name) return self.shortId;
  for (let id = 0; id < MAX_PEERS; id++) if (!taken.has(id)) return id;
  return self.shortId;
}

/**
 * The persisted peer name, created (random) and stored on first use. Throws `ConfigError` naming
 * `PEER_NAME_KEY` when the stored value is not a peer name (a corrupted store is not silently
 * replaced: a new name would orphan this node's IPAM space).
 */
export async function loadPeerName(local: Datastore, random: () => number): Promise<string> {
  const stored = await local.get(PEER_NAME_KEY);
  if (stored) {
    if (!isPeerName(stored.value)) {
      throw new ConfigError({ component: "weave", field: PEER_NAME_KEY, rule: "must be a peer name like aa:bb:cc:dd:ee:ff (delete the key to make a new one)", value: stored.value });
    }
    return stored.value;
  }
  const name = randomPeerName(random);
  await local.put(PEER_NAME_KEY, name);
  return name;
}
