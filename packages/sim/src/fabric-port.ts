/**
 * The simulator's fabric port (`FabricPort` in core's backend.ts): what a cluster-level controller
 * programs reaches the simulated underlay. Routes go into every router's table (`SimFabric
 * .setFabricRoutes`): the "VNet" carries the destination to the node. A secondary address becomes
 * an address of the node's underlay interface (the node answers ARP and takes delivery on it) and
 * part of the node's member record, so the node sees what the fabric gave it.
 */
import { FabricTable, type FabricAddress, type FabricPort, type FabricRoute, type Membership } from "@cnikit/core";
import type { SimFabric } from "./fabric.ts";

/** What the port needs from the cluster that owns it. */
export interface SimFabricPortHost {
  members: Membership;
  fabric: SimFabric;
  /** The fabric's secondary addresses of `node` changed to `addresses` (sorted): update its record. */
  onAddresses(node: string, addresses: string[]): void;
}

export class SimFabricPort implements FabricPort {
  private readonly host: SimFabricPortHost;
  private readonly table: FabricTable;
  /** Counts of writes that changed something (for tests and reports). */
  readonly writes = { routes: 0, addresses: 0 };

  constructor(host: SimFabricPortHost) {
    this.host = host;
    this.table = new FabricTable(host.members);
    host.fabric.setFabricRouteSource(() => this.table.routes().map((r) => ({ ...r, via: this.table.checkRoute(r).via })));
  }

  /** The routers read the table when they next forward (SimFabric's route source), not per change. */
  private pushRoutes(): void {
    this.host.fabric.fabricRoutesChanged();
  }

  /** Throws `ConfigError` naming `dst` or `node` (see `FabricTable.checkRoute`). */
  async setRoute(route: FabricRoute): Promise<void> {
    const c = this.table.setRoute(route);
    if (!c.changed) return;
    this.writes.routes++;
    this.pushRoutes();
  }

  async deleteRoute(dst: string): Promise<void> {
    if (this.table.deleteRoute(dst) === undefined) return;
    this.writes.routes++;
    this.pushRoutes();
  }

  async routes(): Promise<FabricRoute[]> {
    return this.table.routes();
  }

  /**
   * Throws `ConfigError` naming `address` when it lies outside the node's underlay subnets, is a
   * router's, an external host's, a subnet's network or broadcast address, or another node's.
   */
  async addSecondaryAddress(a: FabricAddress): Promise<void> {
    const checked = this.table.checkAddress(a);
    if (this.table.addressesOf(checked.address.node).includes(checked.address.address)) return;
    this.host.fabric.underlayAt(checked.address.address);
    this.table.addAddress(checked.address);
    this.writes.addresses++;
    this.host.onAddresses(checked.address.node, this.table.addressesOf(checked.address.node));
  }

  async removeSecondaryAddress(a: FabricAddress): Promise<void> {
    if (!this.table.removeAddress(a)) return;
    this.writes.addresses++;
    this.host.onAddresses(a.node, this.table.addressesOf(a.node));
  }

  async secondaryAddresses(): Promise<FabricAddress[]> {
    return this.table.addresses();
  }

  /** A node was deleted from the cluster: the cloud deletes its NIC's addresses and routes to it. */
  dropNode(name: string): void {
    const gone = this.table.dropNode(name);
    if (gone.routes.length > 0) this.pushRoutes();
  }
}
