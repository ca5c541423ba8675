/**
 * cnikitd's stop is a restart (the node keeps its share) unless the node's Node object was deleted
 * from the store (`kubectl delete node`): then the node leaves and the agent stops with release.
 * Flannel on memory stores: its lease under SUBNET_PREFIX is the node's share.
 */
import { MemoryMembership, RealClock, kubeNodeKey, kubeNodeValue, memoryLogger, type Datastore, type Membership } from "@cnikit/core";
import { afterEach, describe, expect, it } from "vitest";
import { flannelDaemon, NODE, type TestDaemon } from "./helpers.ts";

const SUBNET_PREFIX = "/coreos.com/network/subnets/";

const running: TestDaemon[] = [];
afterEach(async () => {
  for (const d of running.splice(0)) await d.daemon.stop();
});

async function leases(store: Datastore): Promise<string[]> {
  return (await store.list(SUBNET_PREFIX)).items.map((kv) => kv.key);
}

async function start(options: { registered: boolean; members?: Membership }) {
  const { logger, records } = memoryLogger({ level: "info" });
  const d = await flannelDaemon({ log: logger, start: false, ...(options.members ? { members: options.members } : {}) });
  running.push(d);
  if (options.registered) await d.store.put(kubeNodeKey(NODE.name), kubeNodeValue(NODE));
  await d.daemon.start();
  await d.daemon.agentStarted;
  expect(await leases(d.store)).toHaveLength(1);
  return { ...d, records };
}

function said(records: { msg: string }[], text: string): boolean {
  return records.some((r) => r.msg.includes(text));
}

describe("cnikitd stop: restart or leave", () => {
  it("the Node object deleted: the agent stops with release (the lease is given back) and says so", async () => {
    const d = await start({ registered: true });
    await d.store.delete(kubeNodeKey(NODE.name));
    await d.daemon.stop();
    expect(await leases(d.store)).toEqual([]);
    expect(said(d.records, "leaving the cluster: this node's Node object was deleted")).toBe(true);
  });

  it("the Node object still there: a restart, the lease kept, and a new daemon on the node takes the same lease", async () => {
    const d = await start({ registered: true });
    const before = await leases(d.store);
    await d.daemon.stop();
    expect(await leases(d.store)).toEqual(before);
    expect(said(d.records, "stopping for a restart (share kept): this node's Node object is still in the store")).toBe(true);
    const again = await flannelDaemon({ store: d.store, local: d.local });
    running.push(again);
    expect(await leases(again.store)).toEqual(before);
  });

  it("a Node object never seen (no registry mirrored into the store): a restart, the lease kept", async () => {
    const d = await start({ registered: false });
    const before = await leases(d.store);
    await d.daemon.stop();
    expect(await leases(d.store)).toEqual(before);
    expect(said(d.records, "this node's Node object was never seen in the store")).toBe(true);
  });

  it("a membership given by the host (not the store's): a restart, whatever the store holds", async () => {
    const members = new MemoryMembership({ clock: new RealClock() });
    members.set(NODE);
    const d = await start({ registered: false, members });
    const before = await leases(d.store);
    await d.daemon.stop();
    expect(await leases(d.store)).toEqual(before);
  });

  it("a store that fails the read: a restart (never release on doubt), with a warning", async () => {
    const d = await start({ registered: true });
    const before = await leases(d.store);
    const get = d.store.get.bind(d.store);
    d.store.get = (key: string) => (key === kubeNodeKey(NODE.name) ? Promise.reject(new Error("etcd unavailable")) : get(key));
    await d.daemon.stop();
    expect(await leases(d.store)).toEqual(before);
    expect(d.records.some((r) => r.level === "warn" && r.msg.includes("could not read this node's Node object"))).toBe(true);
  });
});
