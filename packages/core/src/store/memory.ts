/**
 * `MemoryDatastore`: the whole Datastore contract in one process, for tests, the simulator and
 * benchmarks. Fast (a hash map plus a chunked sorted key index, so a million keys and prefix
 * listings are cheap), with lease TTLs on an injected clock and an availability switch for fault
 * tests.
 *
 * Lease expiry and revoke delete all of the lease's keys under ONE revision (one delete event per
 * key, all carrying that revision), as etcd does.
 */

import type { WatchEvent } from "../datastore.ts";
import { StateDatastore, type StateDatastoreOptions } from "./base.ts";
import type { Mutation } from "./state.ts";

export interface MemoryDatastoreOptions extends StateDatastoreOptions {}

export class MemoryDatastore extends StateDatastore {
  protected readonly label = "[memory-datastore]";

  /**
   * An empty store at revision 0. Throws `ConfigError` naming `historyLimit` when it is not an
   * integer >= 0.
   */
  constructor(options: MemoryDatastoreOptions = {}) {
    super(options);
  }

  /** Number of keys held (for tests and benchmarks). */
  get size(): number {
    return this.state.size;
  }

  protected persist(_m: Mutation, events: WatchEvent[]): void {
    this.hub.publish(events);
  }

  protected readBarrier(): void {}

  protected async closeResources(): Promise<void> {}
}
