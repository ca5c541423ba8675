/**
 * Wire and disk encoding of the IPAM ring's messages: UTF-8 JSON with a version tag, peer names
 * written once per message (tokens refer to them by index), validated field by field on decode
 * (`GossipRejected` naming the field: the mesh drops the connection it came on).
 *
 * Messages (`k`):
 *  - "ring": a ring state, complete (`full`) or a delta (only changed tokens and tombstones), with
 *    the range it divides (rings of different ranges are incompatible) — gossip, unicast, disk;
 *  - "paxos": one Paxos message (broadcast or unicast);
 *  - "want": a request for space (unicast to a donor chosen by advertised free space);
 *  - "claim": a request for specific addresses (a specific-address allocation, or a peer whose ring
 *    yielded keeping its pods' addresses), answered by a ring and, for addresses the owner holds
 *    itself, a "deny".
 */
import { GossipRejected } from "../mesh/gossip.ts";
import type { Ballot, PaxosMessage, PaxosOp } from "./paxos.ts";
import type { RingState, Token } from "./ring.ts";

export const IPAM_WIRE_VERSION = 1;

export type IpamMessage =
  { k: "ring"; range: string; full: boolean; state: RingState } | { k: "paxos"; msg: PaxosMessage } | { k: "want" } | { k: "claim"; offsets: number[] } | { k: "deny"; offsets: number[] };

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

export function encodeMessage(m: IpamMessage): Uint8Array {
  return enc.encode(JSON.stringify(toWire(m)));
}

export function decodeMessage(bytes: Uint8Array): IpamMessage {
  let raw: unknown;
  try {
    raw = JSON.parse(dec.decode(bytes));
  } catch (err) {
    throw new GossipRejected(`[weave] IPAM message: not UTF-8 JSON (${(err as Error).message})`);
  }
  return fromWire(raw);
}

/** The JSON form (also what is persisted). */
export function toWire(m: IpamMessage): Record<string, unknown> {
  switch (m.k) {
    case "ring": {
      const owners: string[] = [];
      const index = new Map<string, number>();
      const ref = (name: string): number => {
        let i = index.get(name);
        if (i === undefined) {
          i = owners.length;
          owners.push(name);
          index.set(name, i);
        }
        return i;
      };
      const t = m.state.tokens.map((x) => [x.start, ref(x.owner), x.version, x.free, x.end]);
      return { v: IPAM_WIRE_VERSION, k: "ring", r: m.range, f: m.full ? 1 : 0, id: [m.state.identity.weight, m.state.identity.seed], d: m.state.dead, o: owners, t };
    }
    case "paxos":
      return { v: IPAM_WIRE_VERSION, k: "paxos", m: m.msg };
    case "want":
      return { v: IPAM_WIRE_VERSION, k: "want" };
    case "claim":
    case "deny":
      return { v: IPAM_WIRE_VERSION, k: m.k, a: m.offsets };
  }
}

function bad(field: string, rule: string): never {
  throw new GossipRejected(`[weave] IPAM message: ${field} ${rule}`);
}

function isObj(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function nat(x: unknown, field: string): number {
  if (typeof x !== "number" || !Number.isSafeInteger(x) || x < 0) bad(field, "must be an integer >= 0");
  return x;
}

function str(x: unknown, field: string): string {
  if (typeof x !== "string" || x.length === 0) bad(field, "must be a non-empty string");
  return x;
}

function ballot(x: unknown, field: string): Ballot {
  if (!isObj(x)) bad(field, "must be a ballot {round, by}");
  return { round: nat(x.round, `${field}.round`), by: str(x.by, `${field}.by`) };
}

const OPS: readonly PaxosOp[] = ["prepare", "promise", "accept", "accepted", "nack", "decided"];

export function fromWire(raw: unknown): IpamMessage {
  if (!isObj(raw)) bad("message", "must be an object");
  if (raw.v !== IPAM_WIRE_VERSION) bad("v", `must be ${IPAM_WIRE_VERSION} (protocol version)`);
  switch (raw.k) {
    case "ring": {
      const range = str(raw.r, "r");
      if (!Array.isArray(raw.id) || raw.id.length !== 2) bad("id", "must be [weight, seed]");
      const identity = { weight: nat(raw.id[0], "id[0]"), seed: str(raw.id[1], "id[1]") };
      if (!Array.isArray(raw.o)) bad("o", "must be a list of peer names");
      const owners = raw.o.map((x, i) => str(x, `o[${i}]`));
      if (!Array.isArray(raw.d)) bad("d", "must be a list of [dead, claimant]");
      const dead = raw.d.map((x, i): [string, string] => {
        if (!Array.isArray(x) || x.length !== 2) bad(`d[${i}]`, "must be [dead, claimant]");
        return [str(x[0], `d[${i}][0]`), str(x[1], `d[${i}][1]`)];
      });
      if (!Array.isArray(raw.t)) bad("t", "must be a list of tokens");
      const tokens = raw.t.map((x, i): Token => {
        if (!Array.isArray(x) || x.length !== 5) bad(`t[${i}]`, "must be [start, owner index, version, free, end]");
        const o = nat(x[1], `t[${i}][1]`);
        if (o >= owners.length) bad(`t[${i}][1]`, "must index the owner list");
        return { start: nat(x[0], `t[${i}][0]`), owner: owners[o]!, version: nat(x[2], `t[${i}][2]`), free: nat(x[3], `t[${i}][3]`), end: nat(x[4], `t[${i}][4]`) };
      });
      return { k: "ring", range, full: raw.f === 1, state: { identity, dead, tokens } };
    }
    case "paxos": {
      const m = raw.m;
      if (!isObj(m)) bad("m", "must be a Paxos message");
      const op = m.op as PaxosOp;
      if (!OPS.includes(op)) bad("m.op", `must be one of ${OPS.join(", ")}`);
      const msg: PaxosMessage = { inst: str(m.inst, "m.inst"), op, b: ballot(m.b, "m.b") };
      if (m.ab !== undefined) msg.ab = ballot(m.ab, "m.ab");
      if (m.v !== undefined) msg.v = m.v;
      return { k: "paxos", msg };
    }
    case "want":
      return { k: "want" };
    case "claim":
    case "deny": {
      if (!Array.isArray(raw.a)) bad("a", "must be a list of offsets");
      return { k: raw.k, offsets: raw.a.map((x, i) => nat(x, `a[${i}]`)) };
    }
    default:
      return bad("k", "must be one of ring, paxos, want, claim, deny");
  }
}
