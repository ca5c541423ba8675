/**
 * The controller tests' cluster: virtual time, a memory store, a settable membership and the
 * store-backed fabric port (optionally made to fail on the k-th call), with helpers to read back
 * what the controller wrote.
 */
import {
  ConfigError,
  MemoryDatastore,
  MemoryMembership,
  StoreFabricPort,
  TryAgainError,
  VirtualClock,
  seededRandom,
  silentLogger,
  type ControllerContext,
  type FabricAddress,
  type FabricPort,
  type FabricRoute,
  type NodeInfo,
} from "@cnikit/core";
import { expect } from "vitest";
import { parseAzureConfig, type AzureConfig } from "../src/config.ts";
import { AzureController } from "../src/controller.ts";
import { NNC_PREFIX, SUBNET_STATE_PREFIX, decodeNncStatus, decodeSubnetState, encodeNncSpec, nncSpecKey, parseNncKey, type NncSpec, type NncStatus, type SubnetState } from "../src/records.ts";

/** A node with one IPv4 underlay interface on a /prefix with a gateway. */
export function node(name: string, address: string, prefixLength = 24, gateway?: string): NodeInfo {
  return { name, underlay: [{ iface: "eth0", address, prefixLength, ...(gateway !== undefined ? { gateway } : {}) }] };
}

/** Which fabric call to fail, and after how many successful calls of it. */
export interface FabricFault {
  method: "addSecondaryAddress" | "removeSecondaryAddress" | "setRoute" | "deleteRoute";
  /** Calls of `method` that still succeed before the failures start. */
  after: number;
  /** How many calls fail (default 1). */
  times?: number;
}

/** A fabric port that delegates to another and throws TryAgainError as `fault` says. */
export class FlakyFabric implements FabricPort {
  private calls = 0;
  private failed = 0;
  private gate: Promise<void> | undefined;
  fault: FabricFault | undefined;
  /** Addresses the fabric refuses to give (ConfigError naming `address`), as a cloud does for one in use elsewhere. */
  readonly refuse = new Set<string>();

  /** Makes every call wait until the returned function is called (a slow fabric). */
  hold(): () => void {
    let open!: () => void;
    this.gate = new Promise<void>((resolve) => (open = resolve));
    return () => {
      this.gate = undefined;
      open();
    };
  }

  constructor(private readonly inner: FabricPort) {}

  private async check(method: FabricFault["method"]): Promise<void> {
    await this.gate;
    const f = this.fault;
    if (!f || f.method !== method) return;
    if (this.calls++ < f.after) return;
    if (this.failed >= (f.times ?? 1)) return;
    this.failed++;
    throw new TryAgainError(`[test] fabric unreachable (${method})`);
  }

  /** Arms a fault (counting from now). */
  arm(fault: FabricFault): void {
    this.fault = fault;
    this.calls = 0;
    this.failed = 0;
  }

  async setRoute(route: FabricRoute): Promise<void> {
    await this.check("setRoute");
    return this.inner.setRoute(route);
  }
  async deleteRoute(dst: string): Promise<void> {
    await this.check("deleteRoute");
    return this.inner.deleteRoute(dst);
  }
  async routes(): Promise<FabricRoute[]> {
    await this.gate;
    return this.inner.routes();
  }
  async addSecondaryAddress(a: FabricAddress): Promise<void> {
    await this.check("addSecondaryAddress");
    if (this.refuse.has(a.address)) throw new ConfigError({ component: "test-fabric", field: "address", rule: "is used by a load balancer", value: a.address });
    return this.inner.addSecondaryAddress(a);
  }
  async removeSecondaryAddress(a: FabricAddress): Promise<void> {
    await this.check("removeSecondaryAddress");
    return this.inner.removeSecondaryAddress(a);
  }
  async secondaryAddresses(): Promise<FabricAddress[]> {
    await this.gate;
    return this.inner.secondaryAddresses();
  }
}

export interface Harness {
  clock: VirtualClock;
  store: MemoryDatastore;
  members: MemoryMembership;
  fabric: FlakyFabric;
  ctx: ControllerContext<AzureConfig>;
  controller: AzureController;
  /** Starts a (new) controller on the same cluster and waits for its first reconcile. */
  start(): Promise<AzureController>;
  /** Lets membership events and watches arrive (virtual `ms`), then waits for the reconciles. */
  settle(ms?: number): Promise<void>;
  statuses(): Promise<Map<string, NncStatus>>;
  subnetStates(): Promise<SubnetState[]>;
  writeSpec(name: string, spec: Partial<NncSpec>): Promise<void>;
  /**
   * Stops the controller and starts a new one on the same cluster; expects the new one to write
   * nothing and the statuses, routes and secondary addresses to be as before. Returns the statuses.
   */
  restartUnchanged(): Promise<Map<string, NncStatus>>;
}

/** A cluster of `nodes` with a controller (not started) for the flat AKS-like `config`. */
export function harness(config: Record<string, unknown>, nodes: NodeInfo[]): Harness {
  const clock = new VirtualClock();
  const store = new MemoryDatastore({ clock });
  const members = new MemoryMembership({ clock, nodes });
  const fabric = new FlakyFabric(new StoreFabricPort({ store, members, log: silentLogger }));
  const ctx: ControllerContext<AzureConfig> = { config: parseAzureConfig(config), store, members, fabric, clock, log: silentLogger, random: seededRandom(1) };
  const h: Harness = {
    clock,
    store,
    members,
    fabric,
    ctx,
    controller: new AzureController(ctx),
    async start() {
      h.controller = new AzureController(ctx);
      await h.controller.start();
      return h.controller;
    },
    async settle(ms = 0) {
      await clock.advance(ms);
      await h.controller.settled();
      await clock.advance(0);
      await h.controller.settled();
    },
    async statuses() {
      const out = new Map<string, NncStatus>();
      for (const kv of (await store.list(NNC_PREFIX)).items) {
        const k = parseNncKey(kv.key);
        if (k?.half !== "status") continue;
        const s = decodeNncStatus(kv.value);
        if (!s) throw new Error(`undecodable status at ${kv.key}`);
        out.set(k.node, s);
      }
      return out;
    },
    async subnetStates() {
      return (await store.list(SUBNET_STATE_PREFIX)).items.map((kv) => {
        const s = decodeSubnetState(kv.value);
        if (!s) throw new Error(`undecodable subnet state at ${kv.key}`);
        return s;
      });
    },
    async restartUnchanged() {
      const before = await h.statuses();
      const routes = await fabric.routes();
      const addresses = await fabric.secondaryAddresses();
      await h.controller.stop();
      const rev = await store.revision();
      await h.start();
      expect(await store.revision()).toBe(rev);
      expect(await h.statuses()).toEqual(before);
      expect(await fabric.routes()).toEqual(routes);
      expect(await fabric.secondaryAddresses()).toEqual(addresses);
      return before;
    },
    async writeSpec(name, spec) {
      await store.put(nncSpecKey(name), encodeNncSpec({ requestedIPCount: 0, ipsNotInUse: [], demand: 0, programmedVersion: 0, ...spec }));
    },
  };
  return h;
}
