/**
 * Broken (calico): DEL deletes the pod's handle and endpoint but leaves its ordinal allocated in the
 * block record (the address is never handed out again), on DEL and on GC: either under the deleted
 * handle's name (an orphan ordinal) or under an anonymous "quarantined" marker. The backend also
 * refuses requested addresses (code 2), and its node share is the whole pool, so a suite that only
 * asks for a released address back or fills the node never sees the leak.
 */
import { UnsupportedFieldError } from "@cnikit/core";
import type { AgentContext, AttachResult, Backend, Datastore, NodeAgent, PodAttachment, PodRef } from "@cnikit/core";
import { calico } from "@cnikit/calico";
import type { CalicoConfig } from "@cnikit/calico";
import { blockKey, handleKey, podHandle } from "@cnikit/calico/internal";
import type { BlockRecord, HandleRecord } from "@cnikit/calico/internal";
import { WrappedAgent, wrapBackend } from "./wrap.ts";

/** What the kept ordinal is marked with, given the released handle. */
type Marker = (handle: string) => string;

/** Marks the handle's ordinal allocated again in its block (one compare-and-swap; a lost race leaves it free). */
async function keepOrdinal(store: Datastore, held: HandleRecord, marker: Marker): Promise<void> {
  const kv = await store.get(blockKey(held.block));
  if (!kv) return;
  const block = JSON.parse(kv.value) as BlockRecord;
  if (block.allocations[held.ordinal] !== null) return;
  block.allocations[held.ordinal] = marker(held.handle);
  block.unallocated = block.unallocated.filter((o) => o !== held.ordinal);
  await store.put(blockKey(held.block), JSON.stringify(block), { ifRevision: kv.modRevision }).catch(() => undefined);
}

async function handleOf(store: Datastore, ref: PodRef): Promise<HandleRecord | undefined> {
  const kv = await store.get(handleKey(podHandle(ref.containerId, ref.ifName)));
  return kv ? (JSON.parse(kv.value) as HandleRecord) : undefined;
}

class OrphanOrdinalAgent extends WrappedAgent {
  constructor(
    inner: NodeAgent,
    private readonly ctx: AgentContext<CalicoConfig>,
    private readonly marker: Marker,
  ) {
    super(inner);
  }

  override attach(pod: PodAttachment): Promise<AttachResult> {
    if (pod.requestedIps && pod.requestedIps.length > 0) {
      return Promise.reject(new UnsupportedFieldError({ component: "broken-calico", field: "requestedIps", value: pod.requestedIps, rule: "requested addresses are not supported" }));
    }
    return this.inner.attach(pod);
  }

  override async detach(ref: PodRef): Promise<void> {
    const held = await handleOf(this.ctx.store, ref);
    await this.inner.detach(ref);
    if (held) await keepOrdinal(this.ctx.store, held, this.marker);
  }

  override async gc(valid: PodRef[]): Promise<void> {
    const keep = new Set(valid.map((v) => `${v.containerId}/${v.ifName}`));
    const held: HandleRecord[] = [];
    for (const p of this.inner.dataplane().pods) {
      if (keep.has(p.key)) continue;
      const h = await handleOf(this.ctx.store, p);
      if (h) held.push(h);
    }
    await this.inner.gc(valid);
    for (const h of held) await keepOrdinal(this.ctx.store, h, this.marker);
  }
}

/** A calico whose DEL and GC keep the ordinal allocated under `marker(handle)` and that refuses requested addresses. */
export function ordinalKeptOnDel(name: string, marker: Marker): Backend<CalicoConfig> {
  return wrapBackend(calico, name, { agent: (inner, ctx) => new OrphanOrdinalAgent(inner, ctx, marker) });
}

/** The ordinal stays allocated to the deleted handle's name (an orphan: the name still says which pod). */
export const blockOrdinalKeptOnDel: Backend<CalicoConfig> = ordinalKeptOnDel("broken-calico-orphan-ordinal-no-requested-ips", (handle) => handle);

/** The ordinal is "quarantined" under an anonymous marker that is never cleared (no pod named anywhere). */
export const blockOrdinalQuarantinedOnDel: Backend<CalicoConfig> = ordinalKeptOnDel("broken-calico-quarantined-ordinal-no-requested-ips", () => "quarantined");
