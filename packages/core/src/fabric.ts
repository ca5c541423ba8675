/**
 * The fabric port's shared parts (the `FabricPort` contract is in backend.ts):
 *
 *  - `FabricTable`: the validated state of a fabric (routes `dst → node`, secondary addresses per
 *    node) against a membership. Every port keeps one and applies what it reports as changed: the
 *    simulator (router routes, node addresses), the lab (`ip route` in its router namespace,
 *    `ip addr` on a node's underlay interface), and `StoreFabricPort`.
 *  - `StoreFabricPort`: records the intents in the cluster store, one key each:
 *    `/cnikit/fabric/routes/<dst with '/' as '_'>` = `{"dst", "node"}` and
 *    `/cnikit/fabric/addresses/<node>/<address>` = `{"node", "address"}`. A real cloud adapter
 *    watches these and programs the cloud; nodes see their secondary addresses through
 *    `watchStoreMembership`, which merges the address records into their member records.
 */
import type { FabricAddress, FabricPort, FabricRoute, Logger, Membership, NodeInfo, UnderlayInterface } from "./backend.ts";
import type { Datastore } from "./datastore.ts";
import { ConfigError } from "./errors.ts";
import { Prefix, canonicalAddress, parseAddress } from "./ip/prefix.ts";

/** Key prefixes of the fabric records (each ends with `/`). */
export const FABRIC_PREFIX = {
  routes: "/cnikit/fabric/routes/",
  addresses: "/cnikit/fabric/addresses/",
} as const;

const COMPONENT = "fabric";

/** The store key of a fabric route. Throws `ConfigError` naming `dst` for a bad CIDR. */
export function fabricRouteKey(dst: string): string {
  return `${FABRIC_PREFIX.routes}${canonicalDst(dst).replace("/", "_")}`;
}

/** The store key of a secondary address. Throws `ConfigError` naming `node` or `address`. */
export function fabricAddressKey(a: FabricAddress): string {
  if (typeof a.node !== "string" || a.node === "" || a.node.includes("/"))
    throw new ConfigError({ component: COMPONENT, field: "node", rule: "must be a non-empty node name without '/'", value: a.node });
  return `${FABRIC_PREFIX.addresses}${a.node}/${canonicalAddress(a.address, { component: COMPONENT, field: "address" })}`;
}

/** Reads a secondary-address key back. Throws `ConfigError` naming `key` for a malformed one. */
export function parseFabricAddressKey(key: string): FabricAddress {
  const rest = key.startsWith(FABRIC_PREFIX.addresses) ? key.slice(FABRIC_PREFIX.addresses.length) : undefined;
  const slash = rest?.indexOf("/") ?? -1;
  if (rest === undefined || slash <= 0) throw new ConfigError({ component: COMPONENT, field: "key", rule: `must be ${FABRIC_PREFIX.addresses}<node>/<address>`, value: key });
  return { node: rest.slice(0, slash), address: canonicalAddress(rest.slice(slash + 1), { component: COMPONENT, field: "key" }) };
}

function canonicalDst(dst: unknown): string {
  return Prefix.parse(dst, { component: COMPONENT, field: "dst" }).toString();
}

function subnetOf(u: UnderlayInterface): Prefix {
  return Prefix.parse(`${u.address}/${u.prefixLength}`, { allowHostBits: true });
}

/**
 * `node` with `addresses` as its secondary addresses (replacing any it had): each goes to the
 * underlay interface whose subnet holds it, else to the first interface of its family; addresses of
 * no family of the node are dropped. Pure; the input is not changed.
 */
export function withSecondaryAddresses(node: NodeInfo, addresses: string[]): NodeInfo {
  const per = node.underlay.map(() => [] as string[]);
  for (const text of addresses) {
    const a = parseAddress(text);
    let i = node.underlay.findIndex((u) => subnetOf(u).contains(text));
    if (i < 0) i = node.underlay.findIndex((u) => parseAddress(u.address).family === a.family);
    if (i >= 0) per[i]!.push(canonicalAddress(text));
  }
  const underlay = node.underlay.map((u, i) => {
    const { secondaryAddresses: _drop, ...rest } = u;
    const list = [...new Set(per[i]!)].sort();
    return list.length > 0 ? { ...rest, secondaryAddresses: list } : rest;
  });
  return { ...node, underlay };
}

/** What a `FabricTable` write changed (for the port to apply). */
export interface FabricRouteChange {
  changed: boolean;
  route: FabricRoute;
  /** The node's underlay address of `dst`'s family: where the fabric carries `dst`. */
  via: string;
  /** The route it replaced (another node), if any. */
  replaced?: FabricRoute;
}

/**
 * The validated state of a fabric. Membership decides which nodes exist; a node that left keeps
 * nothing (`dropNode`). Not persistent: a port that must survive restarts reloads it (`load`).
 */
export class FabricTable {
  private readonly members: Membership;
  private readonly routeMap = new Map<string, FabricRoute>();
  private readonly addressMap = new Map<string, FabricAddress>();

  constructor(members: Membership) {
    this.members = members;
  }

  private member(name: unknown, field: string): NodeInfo {
    const node = typeof name === "string" ? this.members.get(name) : undefined;
    if (!node) throw new ConfigError({ component: COMPONENT, field, rule: "must name a member of the cluster", value: name });
    return node;
  }

  /** Validates a route: `dst` a CIDR, `node` a member with an underlay address of its family. */
  checkRoute(route: FabricRoute): { route: FabricRoute; via: string } {
    const dst = canonicalDst(route?.dst);
    const node = this.member(route.node, "node");
    const family = Prefix.parse(dst).family;
    const u = node.underlay.find((x) => parseAddress(x.address).family === family);
    if (!u) throw new ConfigError({ component: COMPONENT, field: "node", rule: `must have an IPv${family} underlay address to carry ${dst}`, value: route.node });
    return { route: { dst, node: node.name }, via: u.address };
  }

  /** Sets a route (replacing one of the same `dst`). Throws `ConfigError` like `checkRoute`. */
  setRoute(route: FabricRoute): FabricRouteChange {
    const c = this.checkRoute(route);
    const prev = this.routeMap.get(c.route.dst);
    if (prev?.node === c.route.node) return { changed: false, ...c };
    this.routeMap.set(c.route.dst, c.route);
    return { changed: true, ...c, ...(prev ? { replaced: prev } : {}) };
  }

  /** Removes the route of `dst`; returns it, or undefined when there was none. */
  deleteRoute(dst: string): FabricRoute | undefined {
    const key = canonicalDst(dst);
    const prev = this.routeMap.get(key);
    this.routeMap.delete(key);
    return prev;
  }

  routes(): FabricRoute[] {
    return [...this.routeMap.values()].sort((a, b) => (a.dst < b.dst ? -1 : a.dst > b.dst ? 1 : 0));
  }

  /**
   * Validates a secondary address: inside the subnet of one of the node's underlay interfaces (the
   * interface it goes on is returned), not a member's primary address, not another node's
   * secondary address.
   */
  checkAddress(a: FabricAddress): { address: FabricAddress; iface: UnderlayInterface } {
    const node = this.member(a?.node, "node");
    const address = canonicalAddress(a.address, { component: COMPONENT, field: "address" });
    const iface = node.underlay.find((u) => subnetOf(u).contains(address));
    if (!iface) {
      const subnets = node.underlay.map((u) => subnetOf(u).toString()).join(", ");
      throw new ConfigError({ component: COMPONENT, field: "address", rule: `must lie inside an underlay subnet of node ${node.name} (${subnets})`, value: a.address });
    }
    for (const m of this.members.list()) {
      if (m.underlay.some((u) => u.address === address)) throw new ConfigError({ component: COMPONENT, field: "address", rule: `is the underlay address of node ${m.name}`, value: a.address });
    }
    const owner = this.addressMap.get(address);
    if (owner && owner.node !== node.name) throw new ConfigError({ component: COMPONENT, field: "address", rule: `is already a secondary address of node ${owner.node}`, value: a.address });
    return { address: { node: node.name, address }, iface };
  }

  /** Adds a secondary address. Returns whether it was new. Throws `ConfigError` like `checkAddress`. */
  addAddress(a: FabricAddress): { changed: boolean; address: FabricAddress; iface: UnderlayInterface } {
    const c = this.checkAddress(a);
    if (this.addressMap.has(c.address.address)) return { changed: false, ...c };
    this.addressMap.set(c.address.address, c.address);
    return { changed: true, ...c };
  }

  /** Removes a secondary address of `node`; returns whether it was there. */
  removeAddress(a: FabricAddress): boolean {
    const address = canonicalAddress(a.address, { component: COMPONENT, field: "address" });
    if (this.addressMap.get(address)?.node !== a.node) return false;
    this.addressMap.delete(address);
    return true;
  }

  addresses(): FabricAddress[] {
    return [...this.addressMap.values()].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  }

  /** The secondary addresses of one node, sorted. */
  addressesOf(node: string): string[] {
    return this.addresses()
      .filter((a) => a.node === node)
      .map((a) => a.address);
  }

  /** Forgets a departed node's routes and addresses (a deleted VM's NIC and routes); returns them. */
  dropNode(name: string): { routes: FabricRoute[]; addresses: FabricAddress[] } {
    const routes = this.routes().filter((r) => r.node === name);
    const addresses = this.addresses().filter((a) => a.node === name);
    for (const r of routes) this.routeMap.delete(r.dst);
    for (const a of addresses) this.addressMap.delete(a.address);
    return { routes, addresses };
  }

  /** Replaces the whole state with recorded routes and addresses (not re-validated: they were). */
  load(state: { routes: FabricRoute[]; addresses: FabricAddress[] }): void {
    this.routeMap.clear();
    this.addressMap.clear();
    for (const r of state.routes) this.routeMap.set(r.dst, { ...r });
    for (const a of state.addresses) this.addressMap.set(a.address, { ...a });
  }
}

/**
 * A fabric port that records intents in the store (see the module comment) and logs them: what
 * `cnikit-controller` ships, for a real cloud adapter to follow. Validation as `FabricTable`'s.
 */
export class StoreFabricPort implements FabricPort {
  private readonly store: Datastore;
  private readonly table: FabricTable;
  private readonly log: Logger;

  constructor(options: { store: Datastore; members: Membership; log: Logger }) {
    this.store = options.store;
    this.table = new FabricTable(options.members);
    this.log = options.log;
  }

  async setRoute(route: FabricRoute): Promise<void> {
    const c = this.table.checkRoute(route);
    await this.store.put(fabricRouteKey(c.route.dst), JSON.stringify(c.route));
    this.table.setRoute(c.route);
    this.log.info("fabric route", { dst: c.route.dst, node: c.route.node, via: c.via });
  }

  async deleteRoute(dst: string): Promise<void> {
    const key = fabricRouteKey(dst);
    const res = await this.store.delete(key);
    this.table.deleteRoute(dst);
    if (res.deleted) this.log.info("fabric route deleted", { dst: canonicalDst(dst) });
  }

  async routes(): Promise<FabricRoute[]> {
    const listing = await this.store.list(FABRIC_PREFIX.routes);
    return listing.items.map((kv) => JSON.parse(kv.value) as FabricRoute).sort((a, b) => (a.dst < b.dst ? -1 : a.dst > b.dst ? 1 : 0));
  }

  async addSecondaryAddress(a: FabricAddress): Promise<void> {
    const c = this.table.checkAddress(a);
    const key = fabricAddressKey(c.address);
    const owned = await this.store.list(FABRIC_PREFIX.addresses);
    const other = owned.items.find((kv) => kv.key.endsWith(`/${c.address.address}`) && kv.key !== key);
    if (other) throw new ConfigError({ component: COMPONENT, field: "address", rule: `is already a secondary address of node ${parseFabricAddressKey(other.key).node}`, value: a.address });
    await this.store.put(key, JSON.stringify(c.address));
    this.table.addAddress(c.address);
    this.log.info("fabric secondary address", { node: c.address.node, address: c.address.address, iface: c.iface.iface });
  }

  async removeSecondaryAddress(a: FabricAddress): Promise<void> {
    const res = await this.store.delete(fabricAddressKey(a));
    this.table.removeAddress(a);
    if (res.deleted) this.log.info("fabric secondary address removed", { node: a.node, address: a.address });
  }

  async secondaryAddresses(): Promise<FabricAddress[]> {
    const listing = await this.store.list(FABRIC_PREFIX.addresses);
    return listing.items.map((kv) => parseFabricAddressKey(kv.key)).sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  }
}
