/**
 * Membership providers (the `Membership` contract is in backend.ts): one in-memory implementation
 * every provider builds on, a per-agent scope of it, and the one that follows Node objects mirrored
 * in a store (cnikitd, cnikit-controller).
 *
 *  - `MemoryMembership`: a settable member list; events go out on the given clock (a 0 ms timer),
 *    so in the simulator they arrive in virtual time. Setting an unchanged record sends nothing.
 *  - `scopedMembership`: a view of another membership whose subscriptions all end with `close()`
 *    (the simulator closes a crashed agent's scope: a dead agent hears nothing more).
 *  - `watchStoreMembership`: Node objects under `KUBE_PREFIX.nodes` (kube.ts) plus the secondary
 *    addresses the fabric recorded under `FABRIC_PREFIX.addresses` (fabric.ts), followed with
 *    `mirrorPrefix` (list, watch, re-list after failures and on `resyncMs`).
 */
import type { Membership, MembershipEvent, NodeInfo } from "./backend.ts";
import type { Clock } from "./clock.ts";
import type { Datastore } from "./datastore.ts";
import { ConfigError } from "./errors.ts";
import { FABRIC_PREFIX, parseFabricAddressKey, withSecondaryAddresses } from "./fabric.ts";
import { parseAddress } from "./ip/prefix.ts";
import { KUBE_PREFIX, parseKubeNode } from "./kube.ts";
import { mirrorPrefix } from "./store/mirror.ts";

type Listener = (event: MembershipEvent) => void;

/** A stable text of a node record, for "did it change" (key order of maps does not matter). */
function fingerprint(node: NodeInfo): string {
  const sorted = (m: Record<string, string> | undefined): [string, string][] | undefined => (m ? Object.entries(m).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)) : undefined);
  return JSON.stringify([node.name, node.underlay, sorted(node.labels), sorted(node.annotations), node.podCIDRs]);
}

/**
 * Validates a member record: a non-empty name without `/`, at least one underlay interface whose
 * address parses. Throws `ConfigError` naming the field.
 */
export function checkMember(node: NodeInfo): void {
  if (node === null || typeof node !== "object") throw new ConfigError({ component: "membership", field: "node", rule: "must be a NodeInfo object", value: node });
  if (typeof node.name !== "string" || node.name === "" || node.name.includes("/")) {
    throw new ConfigError({ component: "membership", field: "name", rule: "must be a non-empty node name without '/'", value: node.name });
  }
  if (!Array.isArray(node.underlay) || node.underlay.length === 0) {
    throw new ConfigError({ component: "membership", field: `node(${node.name}).underlay`, rule: "must list at least one underlay interface", value: node.underlay });
  }
  node.underlay.forEach((u, i) => parseAddress(u?.address, { component: "membership", field: `node(${node.name}).underlay[${i}].address` }));
}

/** A member list held in memory. `set` and `remove` change it; listeners hear on `clock`. */
export class MemoryMembership implements Membership {
  private readonly clock: Clock;
  private readonly nodes = new Map<string, { node: NodeInfo; print: string }>();
  private readonly listeners = new Set<Listener>();
  private sorted: NodeInfo[] | undefined;

  constructor(options: { clock: Clock; nodes?: NodeInfo[] }) {
    this.clock = options.clock;
    for (const n of options.nodes ?? []) {
      checkMember(n);
      this.nodes.set(n.name, { node: structuredClone(n), print: fingerprint(n) });
    }
  }

  list(): NodeInfo[] {
    this.sorted ??= [...this.nodes.values()].map((e) => e.node).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return this.sorted;
  }

  get(name: string): NodeInfo | undefined {
    return this.nodes.get(name)?.node;
  }

  onChange(listener: Listener): () => void {
    const wrapped: Listener = (e) => listener(e);
    this.listeners.add(wrapped);
    return () => {
      this.listeners.delete(wrapped);
    };
  }

  /**
   * Adds the node (`joined`) or replaces its record (`updated`; nothing when the record is
   * unchanged). The record is copied. Returns whether anything changed. Throws `ConfigError` for
   * an invalid record (see `checkMember`).
   */
  set(node: NodeInfo): boolean {
    checkMember(node);
    const print = fingerprint(node);
    const prev = this.nodes.get(node.name);
    if (prev?.print === print) return false;
    const copy = structuredClone(node);
    this.nodes.set(node.name, { node: copy, print });
    this.sorted = undefined;
    this.emit(prev ? { type: "updated", node: copy, previous: prev.node } : { type: "joined", node: copy });
    return true;
  }

  /** Removes the node (`left`). Returns whether it was a member. */
  remove(name: string): boolean {
    const prev = this.nodes.get(name);
    if (!prev) return false;
    this.nodes.delete(name);
    this.sorted = undefined;
    this.emit({ type: "left", node: prev.node });
    return true;
  }

  private emit(event: MembershipEvent): void {
    if (this.listeners.size === 0) return;
    const targets = [...this.listeners];
    this.clock.setTimeout(() => {
      for (const l of targets) {
        if (!this.listeners.has(l)) continue;
        try {
          l(event);
        } catch {
          // One listener's failure is its own: the others still hear (contract: Membership.onChange).
        }
      }
    }, 0);
  }
}

/**
 * A view of `source` whose subscriptions end together: `close()` unsubscribes every listener
 * registered through the view, and later `onChange` calls register nothing.
 */
export function scopedMembership(source: Membership): { members: Membership; close(): void } {
  const subs = new Set<() => void>();
  let closed = false;
  const members: Membership = {
    list: () => source.list(),
    get: (name) => source.get(name),
    onChange(listener) {
      if (closed) return () => undefined;
      let off: (() => void) | undefined = source.onChange((e) => {
        if (!closed) listener(e);
      });
      const unsubscribe = (): void => {
        off?.();
        off = undefined;
        subs.delete(unsubscribe);
      };
      subs.add(unsubscribe);
      return unsubscribe;
    },
  };
  return {
    members,
    close() {
      closed = true;
      for (const off of [...subs]) off();
    },
  };
}

export interface WatchStoreMembershipOptions {
  store: Datastore;
  clock: Clock;
  /** Ends the watches; the membership then stays as it was. */
  signal: AbortSignal;
  /** A record that does not parse (it is left out; a later valid version comes in) or a failed watch. */
  onError?: (err: unknown, key?: string) => void;
  /** Re-list every `resyncMs` (see `mirrorPrefix`). */
  resyncMs?: number;
  /** Wait before re-listing after a watch failure (default 1000 ms). */
  retryMs?: number;
}

/**
 * Follows the Node objects under `KUBE_PREFIX.nodes` and the secondary addresses under
 * `FABRIC_PREFIX.addresses` (merged into each node's underlay interfaces). Resolves once both
 * first listings are applied, with a complete membership; rejects when a first listing fails.
 */
export async function watchStoreMembership(options: WatchStoreMembershipOptions): Promise<Membership> {
  const { store, clock, signal } = options;
  const members = new MemoryMembership({ clock });
  const objects = new Map<string, NodeInfo>();
  const secondary = new Map<string, Set<string>>();
  const refresh = (name: string): void => {
    const node = objects.get(name);
    if (!node) {
      members.remove(name);
      return;
    }
    members.set(withSecondaryAddresses(node, [...(secondary.get(name) ?? [])]));
  };
  const common = {
    store,
    clock,
    signal,
    ...(options.resyncMs !== undefined ? { resyncMs: options.resyncMs } : {}),
    ...(options.retryMs !== undefined ? { retryMs: options.retryMs } : {}),
    onError: (err: unknown) => options.onError?.(err),
  };
  await mirrorPrefix({
    ...common,
    prefix: KUBE_PREFIX.nodes,
    apply: (key, kv) => {
      const name = key.slice(KUBE_PREFIX.nodes.length);
      if (!kv) objects.delete(name);
      else {
        try {
          objects.set(name, parseKubeNode(key, kv.value));
        } catch (err) {
          options.onError?.(err, key);
          return;
        }
      }
      refresh(name);
    },
  });
  await mirrorPrefix({
    ...common,
    prefix: FABRIC_PREFIX.addresses,
    apply: (key, kv) => {
      let a: { node: string; address: string };
      try {
        a = parseFabricAddressKey(key);
      } catch (err) {
        options.onError?.(err, key);
        return;
      }
      let set = secondary.get(a.node);
      if (kv) {
        if (!set) secondary.set(a.node, (set = new Set()));
        set.add(a.address);
      } else {
        set?.delete(a.address);
        if (set?.size === 0) secondary.delete(a.node);
      }
      refresh(a.node);
    },
  });
  return members;
}
