/**
 * The node's address states (Azure CNS's IP states), pure and in memory: no store, no clock. The
 * agent feeds it the NNC status, its dataplane's progress and the CNI's ADD / DEL, and persists
 * what it must (the pods' reservations, restored with `restore` after a restart).
 *
 * States of an address the node knows:
 *  - `PendingProgramming`: in the status, the node's dataplane does not route it yet;
 *  - `Available`: programmed and free;
 *  - `Assigned`: held by a pod, keyed `containerId/ifName` (a re-created sandbox has a new
 *    containerId, so a new key and a fresh address; the old key's DEL gives the old one back);
 *  - `PendingRelease`: given back in `ipsNotInUse`, until the controller takes it off the status.
 *
 * API:
 *  - `applyStatus(assignedIPs, version)` → `{ added, removed, released, revoked, confirmed, stale }`:
 *    new addresses become PendingProgramming; PendingRelease ones that left are `released` (gone);
 *    idle ones that left are `removed` (gone); an Assigned one that left is NOT dropped: it stays
 *    Assigned (unconfirmed) and is reported in `revoked` so the agent can log and mark the node
 *    impaired; it is reconfirmed if a later status brings it back, dropped on its pod's DEL.
 *    A status older than the last one applied changes nothing (`stale: true`).
 *  - `programmed(version)` → addresses moved PendingProgramming → Available (that version or older).
 *  - `assign(podKey, requested?)` → the pod's address, or undefined when none is Available.
 *    Idempotent per podKey. A requested address must be Available (AddressInUseError naming it and
 *    its state; NotFoundError when the node does not hold it). Otherwise the least recently
 *    released Available address (never-used ones first, then the lowest address): a just-freed
 *    address goes to a new pod last, while stale conntrack / ARP / endpoint state for it may
 *    linger elsewhere (Azure CNS simply reuses it).
 *  - `release(podKey)` → the address freed (Available; dropped if the status no longer has it), or
 *    undefined for an unknown key (an out-of-order or repeated DEL is harmless).
 *  - `markForRelease(count)` → the addresses now PendingRelease (pool.ts `releasePick`: never an
 *    Assigned one; PendingProgramming first, then the highest).
 *  - `restore(podKey, address)`: a persisted reservation after an agent restart; kept Assigned
 *    (unconfirmed until a status carries it, `revoked` if one does not).
 *  - `counts()`, `ipsNotInUse()`, `assignedTo(podKey)`, `ownerOf(address)`, `stateOf(address)`,
 *    `revoked()` (Assigned addresses missing from the last status), `pods()`, `version`.
 */
import { AddressInUseError, ConflictError, NotFoundError, canonicalAddress, parseAddress } from "@cnikit/core";
import { AZURE } from "./config.ts";
import { compareAddresses, releasePick } from "./pool.ts";

export const IpState = {
  PendingProgramming: "PendingProgramming",
  Available: "Available",
  Assigned: "Assigned",
  PendingRelease: "PendingRelease",
} as const;
export type IpState = (typeof IpState)[keyof typeof IpState];

export interface IpStateCounts {
  pendingProgramming: number;
  available: number;
  assigned: number;
  pendingRelease: number;
}

export interface StatusChange {
  /** New addresses, now PendingProgramming. */
  added: string[];
  /** Idle addresses (PendingProgramming / Available) the controller took off: gone. */
  removed: string[];
  /** PendingRelease addresses the controller took off: released, gone. */
  released: string[];
  /** Assigned addresses missing from this status: kept Assigned, reported (pod → address). */
  revoked: { podKey: string; address: string }[];
  /** Assigned addresses the status (again) carries: restored or previously revoked ones, now confirmed. */
  confirmed: string[];
  /** The status was older than the last one applied: nothing changed. */
  stale: boolean;
}

interface Entry {
  state: IpState;
  /** The address as a number (order without re-parsing). */
  value: bigint;
  /** The status version the address arrived with (programming is per version). */
  version: number;
  /** The pod holding it (Assigned only). */
  owner?: string;
  /** The last applied status carries it (false: restored before a status, or revoked). */
  inStatus: boolean;
  /** Logical time it last became free through a release (0: never used). */
  freedAt: number;
  /** Assigned and missing from the status: already reported in a `revoked` list. */
  revokedReported?: boolean;
}

function sorted(list: Iterable<string>): string[] {
  return [...list].sort(compareAddresses);
}

export class NodeIpState {
  private readonly entries = new Map<string, Entry>();
  private readonly byPod = new Map<string, string>();
  private lastVersion = -1;
  private tick = 0;

  /** The last status version applied (-1 before the first). */
  get version(): number {
    return this.lastVersion;
  }

  applyStatus(assignedIPs: readonly string[], version: number): StatusChange {
    const change: StatusChange = { added: [], removed: [], released: [], revoked: [], confirmed: [], stale: false };
    if (version < this.lastVersion) return { ...change, stale: true };
    this.lastVersion = version;
    const next = new Set(assignedIPs.map((a) => canonicalAddress(a)));
    for (const address of sorted(next)) {
      const e = this.entries.get(address);
      if (!e) {
        this.entries.set(address, { state: IpState.PendingProgramming, value: parseAddress(address).value, version, inStatus: true, freedAt: 0 });
        change.added.push(address);
      } else if (!e.inStatus) {
        e.inStatus = true;
        e.version = version;
        delete e.revokedReported;
        if (e.state === IpState.Assigned) change.confirmed.push(address);
      }
    }
    for (const [address, e] of [...this.entries].sort((a, b) => compareAddresses(a[0], b[0]))) {
      if (next.has(address)) continue;
      if (e.state === IpState.Assigned) {
        if (!e.revokedReported) change.revoked.push({ podKey: e.owner ?? "", address });
        e.revokedReported = true;
        e.inStatus = false;
      } else {
        this.entries.delete(address);
        (e.state === IpState.PendingRelease ? change.released : change.removed).push(address);
      }
    }
    return change;
  }

  /** The dataplane now routes every address of status `version` or older: PendingProgramming → Available. */
  programmed(version: number): string[] {
    const out: string[] = [];
    for (const [address, e] of this.entries) {
      if (e.state === IpState.PendingProgramming && e.version <= version) {
        e.state = IpState.Available;
        out.push(address);
      }
    }
    return out.sort(compareAddresses);
  }

  assign(podKey: string, requested?: string): string | undefined {
    const held = this.byPod.get(podKey);
    const want = requested === undefined ? undefined : canonicalAddress(requested);
    if (held !== undefined) {
      if (want !== undefined && want !== held) {
        throw new ConflictError(podKey, `[${AZURE}] pod ${podKey} already holds ${held}; it asked for ${want}: DEL it first`);
      }
      return held;
    }
    let address: string | undefined;
    if (want !== undefined) {
      const e = this.entries.get(want);
      if (!e) throw new NotFoundError(`[${AZURE}] address ${want} is not assigned to this node: request one of its Available addresses or none`);
      if (e.state !== IpState.Available) {
        const who = e.owner === undefined ? "" : ` by ${e.owner}`;
        throw new AddressInUseError(want, `[${AZURE}] address ${want} is ${e.state}${who} on this node, not Available`);
      }
      address = want;
    } else {
      let best: [string, Entry] | undefined;
      for (const candidate of this.entries) {
        if (candidate[1].state !== IpState.Available) continue;
        if (!best || candidate[1].freedAt < best[1].freedAt || (candidate[1].freedAt === best[1].freedAt && candidate[1].value < best[1].value)) {
          best = candidate;
        }
      }
      address = best?.[0];
    }
    if (address === undefined) return undefined;
    const e = this.entries.get(address) as Entry;
    e.state = IpState.Assigned;
    e.owner = podKey;
    this.byPod.set(podKey, address);
    return address;
  }

  release(podKey: string): string | undefined {
    const address = this.byPod.get(podKey);
    if (address === undefined) return undefined;
    this.byPod.delete(podKey);
    const e = this.entries.get(address) as Entry;
    delete e.owner;
    if (!e.inStatus) {
      this.entries.delete(address);
    } else {
      e.state = IpState.Available;
      e.freedAt = ++this.tick;
    }
    return address;
  }

  markForRelease(count: number): string[] {
    const inStatus = [...this.entries].filter(([, e]) => e.inStatus);
    const picked = releasePick({
      assigned: inStatus.map(([a]) => a),
      inUse: inStatus.filter(([, e]) => e.state === IpState.Assigned).map(([a]) => a),
      pendingRelease: inStatus.filter(([, e]) => e.state === IpState.PendingRelease).map(([a]) => a),
      unprogrammed: inStatus.filter(([, e]) => e.state === IpState.PendingProgramming).map(([a]) => a),
      count,
    });
    for (const address of picked) (this.entries.get(address) as Entry).state = IpState.PendingRelease;
    return picked;
  }

  restore(podKey: string, address: string): void {
    const a = canonicalAddress(address);
    const held = this.byPod.get(podKey);
    if (held !== undefined) {
      if (held === a) return;
      throw new ConflictError(podKey, `[${AZURE}] pod ${podKey} already holds ${held}; its saved reservation says ${a}`);
    }
    const e = this.entries.get(a);
    if (e && e.state !== IpState.Available && e.state !== IpState.PendingProgramming) {
      const who = e.owner === undefined ? "" : ` by ${e.owner}`;
      throw new AddressInUseError(a, `[${AZURE}] saved reservation of ${podKey}: address ${a} is ${e.state}${who} on this node`);
    }
    if (e) {
      e.state = IpState.Assigned;
      e.owner = podKey;
    } else {
      this.entries.set(a, { state: IpState.Assigned, value: parseAddress(a).value, owner: podKey, version: this.lastVersion, inStatus: false, freedAt: 0 });
    }
    this.byPod.set(podKey, a);
  }

  counts(): IpStateCounts {
    const c: IpStateCounts = { pendingProgramming: 0, available: 0, assigned: 0, pendingRelease: 0 };
    for (const e of this.entries.values()) {
      if (e.state === IpState.PendingProgramming) c.pendingProgramming++;
      else if (e.state === IpState.Available) c.available++;
      else if (e.state === IpState.Assigned) c.assigned++;
      else c.pendingRelease++;
    }
    return c;
  }

  /** The spec's ipsNotInUse: every PendingRelease address, sorted. */
  ipsNotInUse(): string[] {
    return sorted([...this.entries].filter(([, e]) => e.state === IpState.PendingRelease).map(([a]) => a));
  }

  assignedTo(podKey: string): string | undefined {
    return this.byPod.get(podKey);
  }

  ownerOf(address: string): string | undefined {
    return this.entries.get(canonicalAddress(address))?.owner;
  }

  stateOf(address: string): IpState | undefined {
    return this.entries.get(canonicalAddress(address))?.state;
  }

  /** Assigned addresses the last status does not carry (restored and not yet confirmed, or revoked). */
  revoked(): { podKey: string; address: string }[] {
    return [...this.entries]
      .filter(([, e]) => e.state === IpState.Assigned && !e.inStatus)
      .map(([address, e]) => ({ podKey: e.owner ?? "", address }))
      .sort((x, y) => compareAddresses(x.address, y.address));
  }

  /** Every pod's address, by pod key. */
  pods(): Map<string, string> {
    return new Map(this.byPod);
  }
}
