/**
 * Concurrent ADDs share applies (ApplyLoop coalesces them into one renderer call). A failure in
 * one ADD of such a batch must fail only that ADD and leave nothing of it behind: no reservation
 * in the node-local store, no address held in the pool, no pod in the applied dataplane.
 */
import fc from "fast-check";
import type { NodeDataplane } from "@cnikit/core";
import { afterEach, describe, expect, it } from "vitest";
import type { ApplyOutcome } from "../src/applier.ts";
import { FakeApplier, flannelDaemon, netconf, until, type TestDaemon } from "./helpers.ts";

/** The fake renderer, also remembering every dataplane it was asked to apply (failed ones too). */
class TracingApplier extends FakeApplier {
  readonly tried: NodeDataplane[] = [];
  override async apply(dp: NodeDataplane): Promise<ApplyOutcome> {
    this.tried.push(dp);
    return super.apply(dp);
  }
}

const running: TestDaemon[] = [];
afterEach(async () => {
  for (const d of running.splice(0)) await d.daemon.stop();
});

async function daemon(): Promise<TestDaemon & { applier: TracingApplier }> {
  const d = await flannelDaemon({ applier: new TracingApplier() });
  running.push(d);
  return d as TestDaemon & { applier: TracingApplier };
}

function env(command: string, cid: string, extra: Record<string, string> = {}) {
  return { CNI_COMMAND: command, CNI_CONTAINERID: cid, CNI_NETNS: `/var/run/netns/${cid}`, CNI_IFNAME: "eth0", ...extra };
}

async function call(d: TestDaemon, e: Record<string, string>) {
  const r = await d.daemon.handle(e, netconf());
  return { ...r, json: r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, unknown>) : undefined };
}

async function reserved(d: TestDaemon): Promise<string[]> {
  return (await d.local.list("/flannel/ipam/pods/")).items.map((kv) => kv.key.slice("/flannel/ipam/pods/".length)).sort();
}

/** Every address any attempted dataplane gave container `cid`. */
function addressesTried(d: { applier: TracingApplier }, cid: string): string[] {
  const out = new Set<string>();
  for (const dp of d.applier.tried) for (const p of dp.pods) if (p.containerId === cid) for (const a of p.addresses) out.add(a.split("/")[0]!);
  return [...out];
}

/** Runs `ids` as concurrent ADDs; returns the ids whose ADD succeeded, sorted. */
async function addAll(d: TestDaemon, ids: string[]): Promise<{ ok: string[]; failed: Map<string, Record<string, unknown> | undefined> }> {
  const results = await Promise.all(ids.map(async (id) => [id, await call(d, env("ADD", id))] as const));
  const failed = new Map<string, Record<string, unknown> | undefined>();
  for (const [id, r] of results) if (r.exitCode !== 0) failed.set(id, r.json);
  return {
    ok: results
      .filter(([, r]) => r.exitCode === 0)
      .map(([id]) => id)
      .sort(),
    failed,
  };
}

describe("CniDaemon: one failed ADD in a batch of concurrent ADDs", () => {
  it("a renderer that throws for one pod fails only that ADD; the others, applied together, succeed", async () => {
    const d = await daemon();
    d.applier.delayMs = 20;
    d.applier.failFor.add("bad");
    const ids = ["a", "b", "bad", "c", "d", "e"];
    const { ok, failed } = await addAll(d, ids);
    expect(ok).toEqual(["a", "b", "c", "d", "e"]);
    expect([...failed.keys()]).toEqual(["bad"]);
    expect(failed.get("bad")).toMatchObject({ code: 999, msg: expect.stringContaining("fake renderer: cannot create the veth of bad/eth0") });
    // The bad pod did ride in a shared apply, and was then retried on its own.
    expect(d.applier.tried.some((dp) => dp.pods.length > 1 && dp.pods.some((p) => p.containerId === "bad"))).toBe(true);
    expect(d.daemon.stats().stages["ADD.applyAlone"]?.count).toBeGreaterThanOrEqual(1);
    // Nothing of it stays: no reservation, not in the agent's plan, not in what was applied last.
    expect(await reserved(d)).toEqual(["a/eth0", "b/eth0", "c/eth0", "d/eth0", "e/eth0"]);
    expect(
      d.daemon
        .nodeAgent!.dataplane()
        .pods.map((p) => p.containerId)
        .sort(),
    ).toEqual(["a", "b", "c", "d", "e"]);
    await until(() => d.applier.last?.pods.length === 5);
    expect(d.applier.last!.pods.map((p) => p.containerId).sort()).toEqual(["a", "b", "c", "d", "e"]);
    // Every address it was given is free again: another pod can have each one.
    d.applier.failFor.clear();
    const badAddresses = addressesTried(d, "bad");
    expect(badAddresses.length).toBeGreaterThan(0);
    for (const [i, ip] of badAddresses.entries()) {
      const r = await call(d, env("ADD", `probe${i}`, { CNI_ARGS: `IP=${ip}` }));
      expect(r.exitCode, JSON.stringify(r.json)).toBe(0);
    }
  });

  it("a pod the renderer reports failed (the rest applied) fails alone without a retry", async () => {
    const d = await daemon();
    d.applier.delayMs = 20;
    d.applier.reportFailed.add("nons");
    const { ok, failed } = await addAll(d, ["a", "nons", "b", "c"]);
    expect(ok).toEqual(["a", "b", "c"]);
    expect(failed.get("nons")).toMatchObject({ code: 999, msg: expect.stringContaining("could not set up the interfaces of nons/eth0") });
    expect(d.daemon.stats().stages["ADD.applyAlone"]).toBeUndefined();
    expect(await reserved(d)).toEqual(["a/eth0", "b/eth0", "c/eth0"]);
    await until(
      () =>
        d.applier.last?.pods
          .map((p) => p.containerId)
          .sort()
          .join() === "a,b,c",
    );
  });

  it("a failure that is every pod's (the node cannot be applied) fails every ADD, answers all of them and reserves nothing", async () => {
    const d = await daemon();
    d.applier.delayMs = 5;
    d.applier.failAll = true;
    const { ok, failed } = await addAll(d, ["a", "b", "c", "d"]);
    expect(ok).toEqual([]);
    for (const json of failed.values()) expect(json).toMatchObject({ code: 999, msg: expect.stringContaining("fake renderer: cannot create the veth of anything") });
    expect(await reserved(d)).toEqual([]);
    expect(d.daemon.nodeAgent!.dataplane().pods).toEqual([]);
    d.applier.failAll = false;
    expect((await addAll(d, ["a", "b"])).ok).toEqual(["a", "b"]);
  });

  it("property: whichever pods the renderer refuses, exactly those ADDs fail and exactly the others stay reserved and applied", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(fc.integer({ min: 0, max: 7 }), { maxLength: 4 }), fc.integer({ min: 0, max: 15 }), async (badIdx, delayMs) => {
        const d = await daemon();
        try {
          d.applier.delayMs = delayMs;
          const ids = Array.from({ length: 8 }, (_, i) => `p${i}`);
          const bad = new Set(badIdx.map((i) => `p${i}`));
          for (const id of bad) d.applier.failFor.add(id);
          const { ok, failed } = await addAll(d, ids);
          const good = ids.filter((id) => !bad.has(id)).sort();
          expect(ok).toEqual(good);
          expect([...failed.keys()].sort()).toEqual([...bad].sort());
          expect(await reserved(d)).toEqual(good.map((id) => `${id}/eth0`));
          expect(
            d.daemon
              .nodeAgent!.dataplane()
              .pods.map((p) => p.containerId)
              .sort(),
          ).toEqual(good);
          // Each good pod has its own address.
          const addrs = d.daemon.nodeAgent!.dataplane().pods.map((p) => p.addresses[0]);
          expect(new Set(addrs).size).toBe(good.length);
        } finally {
          running.splice(running.indexOf(d), 1);
          await d.daemon.stop();
        }
      }),
      { numRuns: 12 },
    );
  });
});
