/**
 * Calico-style block IPAM in the cluster Datastore.
 *
 * Keys (Calico's etcd layout, JSON values):
 *  - `/calico/ipam/v2/assignment/ipv4/block/<10-244-1-0-26>`: `BlockRecord` — the block's
 *    affinity, one handle (or null) per ordinal, the FIFO of free ordinals.
 *  - `/calico/ipam/v2/host/<node>/ipv4/block/<10-244-1-0-26>`: `{state: "confirmed"}`.
 *  - `/calico/ipam/v2/handle/<handle>`: `HandleRecord` — which block and ordinal the handle holds.
 *
 * The invariant that makes agent kills harmless: **every change is one store transaction**. A
 * claim creates the affinity and the block together; an allocation writes the block and the
 * handle together; a release rewrites the block and deletes the handle together; returning an
 * empty block deletes it and its affinity together. Each transaction compares the modRevision of
 * every key it reads, so a lost race writes nothing and is retried on fresh data. An agent killed
 * between two transactions leaves a consistent state: at worst an allocated handle whose pod never
 * started, which `gc` releases (the handle names the container, so a retried ADD finds it first).
 */
import { ConfigError, ConflictError, PoolExhaustedError, Prefix, TryAgainError, AddressInUseError, fnv1a32 } from "@cnikit/core";
import type { Datastore, KeyValue, TxnCompare, TxnOp } from "@cnikit/core";
import { checkNoOverlap } from "./config.ts";
import type { IpPool, IpamConfig } from "./config.ts";
import { parseSelector } from "./selector.ts";

export const BLOCK_PREFIX = "/calico/ipam/v2/assignment/";
export const HOST_PREFIX = "/calico/ipam/v2/host/";
export const HANDLE_PREFIX = "/calico/ipam/v2/handle/";
/** Lost compare-and-swaps tolerated per operation (Calico: 100). */
export const MAX_RETRIES = 100;

/** A block as stored. */
export interface BlockRecord {
  cidr: string;
  /** `host:<node>`, or null for a block without affinity. */
  affinity: string | null;
  /** Handle id per ordinal, null = free. */
  allocations: (string | null)[];
  /** Free ordinals, FIFO: allocation takes the head, release appends to the tail. */
  unallocated: number[];
  /**
   * Ordinals never handed out: the IPPool's network address and, for IPv4, its broadcast address
   * when they fall in this block (they are neither free nor allocated). Absent = none.
   */
  reserved?: number[];
}

/** A handle as stored: one address. */
export interface HandleRecord {
  handle: string;
  block: string;
  ordinal: number;
  address: string;
  /** The node that allocated it. */
  node: string;
  attrs?: Record<string, string>;
}

/** The store-key form of a CIDR: `.`, `:` and `/` become `-`. */
export function blockName(cidr: string): string {
  return cidr.replace(/[.:/]/g, "-");
}

function familyDir(cidr: string): string {
  return cidr.includes(":") ? "ipv6" : "ipv4";
}

/** Store key of a block. */
export function blockKey(cidr: string): string {
  return `${BLOCK_PREFIX}${familyDir(cidr)}/block/${blockName(cidr)}`;
}

/** Store key of a node's affinity to a block. */
export function affinityKey(node: string, cidr: string): string {
  return `${HOST_PREFIX}${node}/${familyDir(cidr)}/block/${blockName(cidr)}`;
}

/** Store key of a handle. */
export function handleKey(handle: string): string {
  return `${HANDLE_PREFIX}${handle}`;
}

/** The handle of a pod attachment (Calico: `k8s-pod-network.<containerID>`; the ifName is added for multi-interface pods). */
export function podHandle(containerId: string, ifName: string): string {
  return ifName === "eth0" ? `k8s-pod-network.${containerId}` : `k8s-pod-network.${containerId}.${ifName}`;
}

/** The tunnel-address handle of a node (`ipip-tunnel-addr-<node>` / `vxlan-tunnel-addr-<node>`). */
export function tunnelHandle(kind: "ipip" | "vxlan", node: string): string {
  return `${kind}-tunnel-addr-${node}`;
}

/** A block read from the store with its revision. */
export interface StoredBlock {
  record: BlockRecord;
  modRevision: number;
}

/** Everything under the IPAM prefixes, read in one go. */
export interface IpamSnapshot {
  blocks: Map<string, StoredBlock>;
  /** node → block CIDR → modRevision of the affinity key. */
  affinities: Map<string, Map<string, number>>;
  handles: Map<string, { record: HandleRecord; modRevision: number }>;
}

function parseJson<T>(kv: KeyValue): T | undefined {
  try {
    return JSON.parse(kv.value) as T;
  } catch {
    return undefined;
  }
}

/** Reads every block, affinity and handle. */
export async function readIpam(store: Datastore): Promise<IpamSnapshot> {
  const [b, h, hd] = await Promise.all([store.list(BLOCK_PREFIX), store.list(HOST_PREFIX), store.list(HANDLE_PREFIX)]);
  const blocks = new Map<string, StoredBlock>();
  for (const kv of b.items) {
    const record = parseJson<BlockRecord>(kv);
    if (record) blocks.set(record.cidr, { record, modRevision: kv.modRevision });
  }
  const affinities = new Map<string, Map<string, number>>();
  for (const kv of h.items) {
    const a = affinityOfKey(kv.key);
    if (!a) continue;
    let per = affinities.get(a.node);
    if (!per) affinities.set(a.node, (per = new Map()));
    per.set(a.cidr, kv.modRevision);
  }
  const handles = new Map<string, { record: HandleRecord; modRevision: number }>();
  for (const kv of hd.items) {
    const record = parseJson<HandleRecord>(kv);
    if (record) handles.set(record.handle, { record, modRevision: kv.modRevision });
  }
  return { blocks, affinities, handles };
}

/** Inverse of `blockName` (IPv4 only is unambiguous; IPv6 names keep their `-` groups). */
function nameToCidr(name: string): string | undefined {
  const m4 = /^(\d+)-(\d+)-(\d+)-(\d+)-(\d+)$/.exec(name);
  if (m4) return `${m4[1]}.${m4[2]}.${m4[3]}.${m4[4]}/${m4[5]}`;
  const i = name.lastIndexOf("-");
  if (i < 0) return undefined;
  return `${name.slice(0, i).replace(/-/g, ":")}/${name.slice(i + 1)}`;
}

/** The CIDR of a block key, or undefined for a key of another shape. */
function blockCidrOfKey(key: string): string | undefined {
  const m = /^\/calico\/ipam\/v2\/assignment\/ipv[46]\/block\/(.+)$/.exec(key);
  return m ? nameToCidr(m[1]!) : undefined;
}

/** The node and block CIDR of an affinity key, or undefined for a key of another shape. */
function affinityOfKey(key: string): { node: string; cidr: string } | undefined {
  const m = /^\/calico\/ipam\/v2\/host\/([^/]+)\/ipv[46]\/block\/(.+)$/.exec(key);
  if (!m) return undefined;
  const cidr = nameToCidr(m[2]!);
  return cidr ? { node: m[1]!, cidr } : undefined;
}

/** Options of `BlockIpam`. */
export interface BlockIpamOptions {
  store: Datastore;
  /** This node's name. */
  node: string;
  /** This node's labels (pool nodeSelectors match against them). */
  labels?: Record<string, string>;
  pools: readonly IpPool[];
  config: IpamConfig;
  /** Randomness for borrow order (seeded in tests). */
  random?: () => number;
}

/** The result of an allocation. */
export interface Allocation {
  address: string;
  block: string;
  /** True when the block is affine to another node (the address is borrowed). */
  borrowed: boolean;
}

/**
 * The ordinals of `block` that hold its pool's network address or (IPv4) broadcast address.
 * Calico on Linux hands those out (pods get /32s); we keep them out of use, as the Kubernetes
 * IPAM rule the conformance suite checks says, so no pod ever holds x.x.0.0 of a pool.
 */
export function reservedOrdinals(block: string, pool: string | undefined): number[] {
  if (pool === undefined) return [];
  const b = Prefix.parse(block);
  const p = Prefix.parse(pool);
  const special = p.family === 4 ? [p.network, p.broadcast] : [p.network];
  return [...new Set(special.filter((a) => b.contains(a)).map((a) => Number(b.indexOf(a))))].sort((x, y) => x - y);
}

function newBlock(cidr: string, affinity: string | null, pool: string | undefined): BlockRecord {
  const size = Number(Prefix.parse(cidr).size);
  const reserved = reservedOrdinals(cidr, pool);
  const skip = new Set(reserved);
  return {
    cidr,
    affinity,
    allocations: new Array<string | null>(size).fill(null),
    unallocated: Array.from({ length: size }, (_, i) => i).filter((i) => !skip.has(i)),
    ...(reserved.length > 0 ? { reserved } : {}),
  };
}

/**
 * Block IPAM for one node. Every method is safe to call concurrently with any other node's (all
 * writes are compare-and-swap transactions); calls on one instance may also overlap.
 */
export class BlockIpam {
  private readonly store: Datastore;
  private readonly node: string;
  private readonly labels: Record<string, string>;
  private readonly pools: readonly IpPool[];
  private readonly config: IpamConfig;
  private readonly random: () => number;

  constructor(options: BlockIpamOptions) {
    this.store = options.store;
    this.node = options.node;
    this.labels = options.labels ?? {};
    this.pools = options.pools;
    this.config = options.config;
    this.random = options.random ?? Math.random;
  }

  /** Pools this node may allocate from: enabled, nodeSelector matching, of the family. */
  usablePools(family: 4 | 6 = 4): IpPool[] {
    return this.pools.filter((p) => p.family === family && !p.disabled && parseSelector(p.nodeSelector, `IPPool/${p.name}.spec.nodeSelector`)(this.labels));
  }

  /**
   * Allocates one address for `handle` (idempotent: an existing handle returns its address).
   * Order: this node's affine blocks, then a newly claimed block (CAS, under `maxBlocksPerHost`),
   * then — unless `strictAffinity` — a free address of another node's block. One transaction
   * writes the block and the handle together.
   * @throws PoolExhaustedError when no usable pool has a free address for this node,
   *   TryAgainError after `MAX_RETRIES` lost races, and whatever the store throws (TryAgainError).
   */
  async allocate(handle: string, attrs: Record<string, string> = {}, family: 4 | 6 = 4): Promise<Allocation> {
    const pools = this.usablePools(family);
    if (pools.length === 0) {
      throw new PoolExhaustedError("(none)", `[calico] node ${this.node} matches no enabled IPv${family} IPPool (check nodeSelector and disabled)`);
    }
    const inPools = (cidr: string): boolean => pools.some((p) => Prefix.parse(p.cidr).contains(Prefix.parse(cidr)));
    for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
      // Reads only what this step needs — the handle, this node's affinities and their blocks —
      // not the whole IPAM: an allocation costs O(own blocks), not O(every handle of the cluster).
      const [hkv, affine] = await Promise.all([this.store.get(handleKey(handle)), this.affineBlocks()]);
      const existing = hkv ? parseJson<HandleRecord>(hkv) : undefined;
      if (existing) {
        const bkv = await this.store.get(blockKey(existing.block));
        const affinity = bkv ? parseJson<BlockRecord>(bkv)?.affinity : undefined;
        return { address: existing.address, block: existing.block, borrowed: affinity !== `host:${this.node}` };
      }
      const mine = affine.filter(inPools);
      try {
        // 1. affine blocks with a free ordinal
        for (const cidr of mine) {
          const kv = await this.store.get(blockKey(cidr));
          const record = kv ? parseJson<BlockRecord>(kv) : undefined;
          if (kv && record && record.affinity === `host:${this.node}` && record.unallocated.length > 0) {
            return await this.take({ record, modRevision: kv.modRevision }, handle, attrs, false);
          }
        }
        // 2. claim a new block (only the block keys are needed to find a free one)
        if (this.config.autoAllocateBlocks && mine.length < this.config.maxBlocksPerHost) {
          const existingBlocks = (await this.store.list(BLOCK_PREFIX)).items.map((kv) => blockCidrOfKey(kv.key)).filter((c): c is string => c !== undefined);
          const free = this.freeBlock(pools, existingBlocks);
          if (free) {
            await this.claimBlock(free.cidr);
            continue; // re-read and take from it in the next round
          }
        }
        // 3. borrow (the rare case that reads every block)
        if (!this.config.strictAffinity) {
          const snap = await readIpam(this.store);
          const others = [...snap.blocks.values()].filter((b) => b.record.affinity !== `host:${this.node}` && b.record.unallocated.length > 0 && inPools(b.record.cidr));
          if (others.length > 0) {
            const b = others[Math.floor(this.random() * others.length) % others.length]!;
            return await this.take(b, handle, attrs, true);
          }
        }
      } catch (err) {
        if (err instanceof ConflictError) continue;
        throw err;
      }
      throw new PoolExhaustedError(
        pools.map((p) => p.cidr).join(","),
        `[calico] no free address for node ${this.node} in ${pools.map((p) => p.cidr).join(", ")}` +
          (mine.length >= this.config.maxBlocksPerHost ? ` (the node holds ${mine.length} blocks, the maxBlocksPerHost cap)` : "") +
          (this.config.strictAffinity ? " (strictAffinity forbids borrowing)" : ""),
      );
    }
    throw new TryAgainError(`[calico] lost ${MAX_RETRIES} allocation races on node ${this.node}; try again`);
  }

  /**
   * Allocates a specific address for `handle` (requested IPs). Claims the address's block for this
   * node if it has no block yet. Idempotent for the same handle and address.
   * @throws AddressInUseError when taken by another handle or outside every usable pool.
   */
  async allocateSpecific(handle: string, address: string, attrs: Record<string, string> = {}): Promise<Allocation> {
    const family = address.includes(":") ? 6 : 4;
    const pool = this.usablePools(family).find((p) => Prefix.parse(p.cidr).contains(address));
    if (!pool) throw new AddressInUseError(address, `[calico] requested address ${address} is in no enabled IPPool that node ${this.node} may use`);
    const cidr = Prefix.of(family, Prefix.host(address).base, pool.blockSize).toString();
    for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
      const snap = await readIpam(this.store);
      const existing = snap.handles.get(handle);
      if (existing) {
        if (existing.record.address === address) return { address, block: existing.record.block, borrowed: snap.blocks.get(existing.record.block)?.record.affinity !== `host:${this.node}` };
        throw new AddressInUseError(address, `[calico] handle ${handle} already holds ${existing.record.address}`);
      }
      try {
        const b = snap.blocks.get(cidr);
        if (!b) {
          await this.claimBlock(cidr);
          continue;
        }
        const ordinal = Number(Prefix.parse(cidr).indexOf(address));
        if (b.record.reserved?.includes(ordinal)) {
          throw new AddressInUseError(address, `[calico] requested address ${address} is the network or broadcast address of IPPool ${pool.cidr}; it is never handed out`);
        }
        if (b.record.allocations[ordinal] !== null) throw new AddressInUseError(address, `[calico] ${address} is already allocated to ${b.record.allocations[ordinal]}`);
        return await this.take(b, handle, attrs, b.record.affinity !== `host:${this.node}`, ordinal);
      } catch (err) {
        if (err instanceof ConflictError) continue;
        throw err;
      }
    }
    throw new TryAgainError(`[calico] lost ${MAX_RETRIES} allocation races for ${address}; try again`);
  }

  /** The CIDR of the configured pool that contains `block`, if any. */
  private poolOf(block: string): string | undefined {
    const b = Prefix.parse(block);
    return this.pools.find((p) => Prefix.parse(p.cidr).contains(b))?.cidr;
  }

  private freeBlock(pools: IpPool[], existing: readonly string[]): { cidr: string } | undefined {
    const start = fnv1a32(this.node); // Calico seeds the block search order with a hash of the hostname
    for (const pool of pools) {
      const p = Prefix.parse(pool.cidr);
      const count = Number(p.subnetCount(pool.blockSize));
      const occupied: Prefix[] = existing.map((c) => Prefix.parse(c)).filter((b) => b.overlaps(p));
      for (let i = 0; i < count; i++) {
        const sub = p.nthSubnet(pool.blockSize, (start + i) % count);
        if (!occupied.some((o) => o.overlaps(sub))) return { cidr: sub.toString() };
      }
    }
    return undefined;
  }

  /** Creates the affinity and the block in one transaction (both must not exist). */
  private async claimBlock(cidr: string): Promise<void> {
    const compares: TxnCompare[] = [
      { key: blockKey(cidr), modRevision: 0 },
      { key: affinityKey(this.node, cidr), modRevision: 0 },
    ];
    const ops: TxnOp[] = [
      { op: "put", key: affinityKey(this.node, cidr), value: JSON.stringify({ state: "confirmed" }) },
      { op: "put", key: blockKey(cidr), value: JSON.stringify(newBlock(cidr, `host:${this.node}`, this.poolOf(cidr))) },
    ];
    const r = await this.store.txn(compares, ops);
    if (!r.succeeded) throw new ConflictError(blockKey(cidr), `[calico] block ${cidr} was claimed concurrently`);
  }

  private async take(b: StoredBlock, handle: string, attrs: Record<string, string>, borrowed: boolean, ordinal?: number): Promise<Allocation> {
    const rec: BlockRecord = { ...b.record, allocations: [...b.record.allocations], unallocated: [...b.record.unallocated] };
    let ord: number;
    if (ordinal === undefined) {
      ord = rec.unallocated.shift()!;
    } else {
      ord = ordinal;
      rec.unallocated = rec.unallocated.filter((o) => o !== ordinal);
    }
    rec.allocations[ord] = handle;
    const address = Prefix.parse(rec.cidr).nth(ord);
    const h: HandleRecord = { handle, block: rec.cidr, ordinal: ord, address, node: this.node, ...(Object.keys(attrs).length > 0 ? { attrs } : {}) };
    const r = await this.store.txn(
      [
        { key: blockKey(rec.cidr), modRevision: b.modRevision },
        { key: handleKey(handle), modRevision: 0 },
      ],
      [
        { op: "put", key: blockKey(rec.cidr), value: JSON.stringify(rec) },
        { op: "put", key: handleKey(handle), value: JSON.stringify(h) },
      ],
    );
    if (!r.succeeded) throw new ConflictError(blockKey(rec.cidr), `[calico] block ${rec.cidr} changed concurrently`);
    return { address, block: rec.cidr, borrowed };
  }

  /**
   * Releases `handle`'s address: the ordinal goes to the tail of the block's free FIFO and the
   * handle is deleted, in one transaction. Idempotent: an unknown handle is a success.
   * @throws TryAgainError after `MAX_RETRIES` lost races or when the store is unavailable.
   */
  async release(handle: string): Promise<boolean> {
    return releaseHandle(this.store, handle);
  }

  /** The blocks affine to this node (canonical CIDRs, sorted). */
  async affineBlocks(): Promise<string[]> {
    const listing = await this.store.list(`${HOST_PREFIX}${this.node}/`);
    return listing.items
      .map((kv) => affinityOfKey(kv.key)?.cidr)
      .filter((c): c is string => c !== undefined && c !== "")
      .sort();
  }
}

/**
 * Releases one handle (see `BlockIpam.release`). Returns whether something was released.
 * @throws TryAgainError after `MAX_RETRIES` lost races.
 */
export async function releaseHandle(store: Datastore, handle: string): Promise<boolean> {
  for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
    const hkv = await store.get(handleKey(handle));
    if (!hkv) return false;
    const h = parseJson<HandleRecord>(hkv);
    const bkv = h ? await store.get(blockKey(h.block)) : undefined;
    const b = bkv ? parseJson<BlockRecord>(bkv) : undefined;
    const compares: TxnCompare[] = [{ key: handleKey(handle), modRevision: hkv.modRevision }];
    const ops: TxnOp[] = [{ op: "delete", key: handleKey(handle) }];
    if (h && bkv && b && b.allocations[h.ordinal] === handle) {
      const rec: BlockRecord = { ...b, allocations: [...b.allocations], unallocated: [...b.unallocated, h.ordinal] };
      rec.allocations[h.ordinal] = null;
      compares.push({ key: bkv.key, modRevision: bkv.modRevision });
      ops.push({ op: "put", key: bkv.key, value: JSON.stringify(rec) });
    }
    const r = await store.txn(compares, ops);
    if (r.succeeded) return true;
  }
  throw new TryAgainError(`[calico] lost ${MAX_RETRIES} races releasing ${handle}; try again`);
}

/** Options of `gcIpam`. */
export interface IpamGcOptions {
  store: Datastore;
  /** Nodes that exist. Handles and blocks of other nodes are released. */
  liveNodes: ReadonlySet<string>;
  /**
   * Handles known to be in use (pods that exist, tunnel addresses of live nodes). Every other
   * handle allocated by a live node is released too.
   */
  liveHandles: ReadonlySet<string>;
}

/** What a GC pass did. */
export interface IpamGcReport {
  releasedHandles: string[];
  releasedBlocks: string[];
}

/**
 * Garbage-collects IPAM: releases every handle not in `liveHandles`, then returns empty blocks
 * whose node is gone, and empty blocks of live nodes beyond the first (a node keeps one block).
 * Each release and each block return is its own compare-and-swap transaction, so a GC racing with
 * allocations never frees a live address: a block that gained an address since it was read is
 * left alone. Idempotent.
 * @throws TryAgainError when the store is unavailable.
 */
export async function gcIpam(options: IpamGcOptions): Promise<IpamGcReport> {
  const { store, liveNodes, liveHandles } = options;
  const report: IpamGcReport = { releasedHandles: [], releasedBlocks: [] };
  let snap = await readIpam(store);
  const leaked = new Set<string>([...snap.handles.keys()].filter((h) => !liveHandles.has(h)));
  // Orphan ordinals (a block naming a handle that does not exist): cannot happen through this
  // module's transactions, but a store edited by hand may have them; they are leaks too.
  for (const b of snap.blocks.values()) for (const h of b.record.allocations) if (h !== null && !snap.handles.has(h) && !liveHandles.has(h)) leaked.add(h);
  for (const h of [...leaked].sort()) {
    if (snap.handles.has(h)) {
      if (await releaseHandle(store, h)) report.releasedHandles.push(h);
    } else {
      if (await clearOrphan(store, h)) report.releasedHandles.push(h);
    }
  }
  snap = await readIpam(store);
  const kept = new Map<string, number>();
  for (const b of [...snap.blocks.values()].sort((x, y) => (x.record.cidr < y.record.cidr ? -1 : 1))) {
    const rec = b.record;
    const node = rec.affinity?.startsWith("host:") ? rec.affinity.slice(5) : undefined;
    const empty = rec.allocations.every((a) => a === null);
    if (!empty) {
      if (node) kept.set(node, (kept.get(node) ?? 0) + 1);
      continue;
    }
    if (node && liveNodes.has(node) && (kept.get(node) ?? 0) === 0) {
      kept.set(node, 1);
      continue;
    }
    const compares: TxnCompare[] = [{ key: blockKey(rec.cidr), modRevision: b.modRevision }];
    const ops: TxnOp[] = [{ op: "delete", key: blockKey(rec.cidr) }];
    if (node) {
      const aff = snap.affinities.get(node)?.get(rec.cidr);
      if (aff !== undefined) {
        compares.push({ key: affinityKey(node, rec.cidr), modRevision: aff });
        ops.push({ op: "delete", key: affinityKey(node, rec.cidr) });
      }
    }
    const r = await store.txn(compares, ops);
    if (r.succeeded) report.releasedBlocks.push(rec.cidr);
  }
  // Affinities without a block (never written by this module, but repairable).
  for (const [node, per] of snap.affinities) {
    for (const [cidr, rev] of per) {
      if (snap.blocks.has(cidr)) continue;
      const r = await store.txn(
        [
          { key: affinityKey(node, cidr), modRevision: rev },
          { key: blockKey(cidr), modRevision: 0 },
        ],
        [{ op: "delete", key: affinityKey(node, cidr) }],
      );
      if (r.succeeded) report.releasedBlocks.push(cidr);
    }
  }
  return report;
}

async function clearOrphan(store: Datastore, handle: string): Promise<boolean> {
  for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
    const snap = await readIpam(store);
    if (snap.handles.has(handle)) return false;
    const b = [...snap.blocks.values()].find((x) => x.record.allocations.includes(handle));
    if (!b) return false;
    const rec: BlockRecord = { ...b.record, allocations: [...b.record.allocations], unallocated: [...b.record.unallocated] };
    rec.allocations.forEach((a, i) => {
      if (a === handle) {
        rec.allocations[i] = null;
        rec.unallocated.push(i);
      }
    });
    const r = await store.txn(
      [
        { key: blockKey(rec.cidr), modRevision: b.modRevision },
        { key: handleKey(handle), modRevision: 0 },
      ],
      [{ op: "put", key: blockKey(rec.cidr), value: JSON.stringify(rec) }],
    );
    if (r.succeeded) return true;
  }
  throw new TryAgainError(`[calico] lost ${MAX_RETRIES} races clearing orphan ${handle}`);
}

/** One inconsistency found by `checkIpam`. */
export interface IpamProblem {
  key: string;
  problem: string;
}

/**
 * Checks IPAM state for consistency (the `cnikit-calico ipam check` command): every block's
 * free list and allocations partition its ordinals; every allocated ordinal names a handle that
 * points back at it; every handle points at an ordinal allocated to it; no two blocks overlap;
 * every block lies in a pool (when pools are given) and has the affinity its affinity key says;
 * no address is held twice. Returns the problems (empty = consistent). Read-only.
 */
export async function checkIpam(store: Datastore, pools?: readonly IpPool[]): Promise<IpamProblem[]> {
  const snap = await readIpam(store);
  const out: IpamProblem[] = [];
  const prefixes: Prefix[] = [];
  for (const { record: b } of snap.blocks.values()) {
    const key = blockKey(b.cidr);
    let p: Prefix;
    try {
      p = Prefix.parse(b.cidr);
    } catch {
      out.push({ key, problem: `unparsable CIDR ${b.cidr}` });
      continue;
    }
    for (const q of prefixes) if (q.overlaps(p)) out.push({ key, problem: `overlaps block ${q.toString()}` });
    prefixes.push(p);
    if (pools && !pools.some((pool) => Prefix.parse(pool.cidr).contains(p))) out.push({ key, problem: "lies in no IPPool" });
    const size = Number(p.size);
    if (b.allocations.length !== size) out.push({ key, problem: `has ${b.allocations.length} ordinals, expected ${size}` });
    const free = new Set<number>();
    const reserved = new Set(b.reserved ?? []);
    for (const o of reserved) {
      if (b.allocations[o] !== null && b.allocations[o] !== undefined) out.push({ key, problem: `reserved ordinal ${o} (${p.nth(o)}) is allocated to ${b.allocations[o]}` });
    }
    for (const o of b.unallocated) {
      if (reserved.has(o)) out.push({ key, problem: `reserved ordinal ${o} (${p.nth(o)}) is on the free list` });
      if (free.has(o)) out.push({ key, problem: `ordinal ${o} is free twice` });
      free.add(o);
      if (b.allocations[o] !== null) out.push({ key, problem: `ordinal ${o} is both free and allocated to ${b.allocations[o]}` });
    }
    b.allocations.forEach((h, o) => {
      if (h === null) {
        if (!free.has(o) && !reserved.has(o)) out.push({ key, problem: `ordinal ${o} (${p.nth(o)}) is neither free nor allocated (leaked)` });
        return;
      }
      const hr = snap.handles.get(h);
      if (!hr) out.push({ key, problem: `ordinal ${o} (${p.nth(o)}) is allocated to handle ${h}, which does not exist` });
      else if (hr.record.block !== b.cidr || hr.record.ordinal !== o) out.push({ key, problem: `ordinal ${o} is allocated to ${h}, but the handle points at ${hr.record.block}#${hr.record.ordinal}` });
    });
    if (b.affinity?.startsWith("host:")) {
      const node = b.affinity.slice(5);
      if (!snap.affinities.get(node)?.has(b.cidr)) out.push({ key, problem: `says affinity ${b.affinity} but ${affinityKey(node, b.cidr)} is missing` });
    }
  }
  const seen = new Map<string, string>();
  for (const { record: h } of snap.handles.values()) {
    const key = handleKey(h.handle);
    const b = snap.blocks.get(h.block);
    if (!b) out.push({ key, problem: `points at block ${h.block}, which does not exist` });
    else if (b.record.allocations[h.ordinal] !== h.handle) out.push({ key, problem: `points at ${h.block}#${h.ordinal}, which is allocated to ${String(b.record.allocations[h.ordinal])}` });
    else if (Prefix.parse(h.block).nth(h.ordinal) !== h.address) out.push({ key, problem: `address ${h.address} is not ordinal ${h.ordinal} of ${h.block}` });
    const other = seen.get(h.address);
    if (other) out.push({ key, problem: `address ${h.address} is also held by ${other}` });
    seen.set(h.address, h.handle);
  }
  for (const [node, per] of snap.affinities) {
    for (const cidr of per.keys()) {
      const b = snap.blocks.get(cidr);
      if (!b) out.push({ key: affinityKey(node, cidr), problem: "affinity without a block" });
      else if (b.record.affinity !== `host:${node}`) out.push({ key: affinityKey(node, cidr), problem: `block's affinity is ${String(b.record.affinity)}` });
    }
  }
  return out;
}

/**
 * Writes a pool set into the store atomically, refusing overlaps on create and on update (better
 * than Calico, whose check is client-side and create-only): one transaction compares every pool
 * key it read, so two racing writers cannot both add overlapping pools.
 * @throws ConfigError for an overlap; ConflictError when the pools changed concurrently (retry).
 */
export async function putPool(store: Datastore, pool: IpPool): Promise<void> {
  const listing = await store.list(POOL_PREFIX);
  const existing: IpPool[] = [];
  const compares: TxnCompare[] = [];
  for (const kv of listing.items) {
    const p = parseJson<IpPool>(kv);
    if (!p) continue;
    compares.push({ key: kv.key, modRevision: kv.modRevision });
    if (p.name === pool.name) {
      if (p.cidr !== pool.cidr || p.blockSize !== pool.blockSize) {
        throw new ConfigError({ component: "calico", field: `IPPool/${pool.name}.spec.${p.cidr !== pool.cidr ? "cidr" : "blockSize"}`, rule: "is immutable" });
      }
      continue;
    }
    existing.push(p);
  }
  checkNoOverlap(pool, existing);
  const key = `${POOL_PREFIX}${pool.name}`;
  if (!listing.items.some((kv) => kv.key === key)) compares.push({ key, modRevision: 0 });
  // Every pool write also rewrites one guard key, so two writers that read the same pool set
  // conflict even when they write different pool keys.
  const guard = await store.get(POOL_GUARD_KEY);
  compares.push({ key: POOL_GUARD_KEY, modRevision: guard?.modRevision ?? 0 });
  if (guard && guard.modRevision > listing.revision) throw new ConflictError(key, `[calico] IPPools changed while writing ${pool.name}; retry`);
  const r = await store.txn(compares, [
    { op: "put", key, value: JSON.stringify(pool) },
    { op: "put", key: POOL_GUARD_KEY, value: String(listing.revision) },
  ]);
  if (!r.succeeded) throw new ConflictError(key, `[calico] IPPools changed while writing ${pool.name}; retry`);
}

/** Prefix of IPPools stored in the Datastore (`putPool`). */
export const POOL_PREFIX = "/calico/resources/v3/projectcalico.org/ippools/";
/** Rewritten by every `putPool`: serialises pool writers. */
export const POOL_GUARD_KEY = "/calico/resources/v3/projectcalico.org/ippools-guard";

/**
 * Returns every empty block affine to `node` (block and affinity deleted together, CAS on both);
 * blocks that still hold addresses keep their affinity. Used when a node leaves cleanly.
 * Idempotent. Returns the released CIDRs.
 */
export async function releaseNodeBlocks(store: Datastore, node: string): Promise<string[]> {
  const snap = await readIpam(store);
  const out: string[] = [];
  for (const [cidr, rev] of snap.affinities.get(node) ?? []) {
    const b = snap.blocks.get(cidr);
    if (b && b.record.allocations.some((a) => a !== null)) continue;
    const compares: TxnCompare[] = [{ key: affinityKey(node, cidr), modRevision: rev }];
    const ops: TxnOp[] = [{ op: "delete", key: affinityKey(node, cidr) }];
    if (b) {
      compares.push({ key: blockKey(cidr), modRevision: b.modRevision });
      ops.push({ op: "delete", key: blockKey(cidr) });
    }
    if ((await store.txn(compares, ops)).succeeded) out.push(cidr);
  }
  return out;
}
