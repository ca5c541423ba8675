import { describe, expect, it } from "vitest";
import { LocalPodRecords, MemoryDatastore, VirtualClock, attachmentRecord, memoryLogger } from "../src/index.ts";

interface Rec {
  containerId: string;
  ifName: string;
  address: string;
}

function setup() {
  const clock = new VirtualClock();
  const local = new MemoryDatastore({ clock });
  const log = memoryLogger({ clock });
  const records = new LocalPodRecords<Rec>({ local, log: log.logger, component: "test", decode: (v) => (typeof (v as Rec | null)?.address === "string" ? (v as Rec) : undefined) });
  return { local, log, records };
}

describe("LocalPodRecords (the kit's node-local pod reservations)", () => {
  it("puts, reads back, lists refs and removes one record per attachment", async () => {
    const { records, local } = setup();
    await records.put({ containerId: "c1", ifName: "eth0", address: "10.0.0.2" });
    await records.put({ containerId: "c2", ifName: "net1", address: "10.0.0.3" });
    expect(await local.get("/pods/c1/eth0")).toBeDefined();
    expect(await records.has({ containerId: "c1", ifName: "eth0" })).toBe(true);
    expect((await records.load()).map((r) => r.address).sort()).toEqual(["10.0.0.2", "10.0.0.3"]);
    expect(await records.refs()).toEqual([
      { containerId: "c1", ifName: "eth0" },
      { containerId: "c2", ifName: "net1" },
    ]);
    await records.remove({ containerId: "c1", ifName: "eth0" });
    await records.remove({ containerId: "c1", ifName: "eth0" });
    expect(await records.has({ containerId: "c1", ifName: "eth0" })).toBe(false);
  });

  it("drops an unreadable record with a warning naming its key, and keeps the rest", async () => {
    const { records, local, log } = setup();
    await records.put({ containerId: "ok", ifName: "eth0", address: "10.0.0.2" });
    await local.put("/pods/bad/eth0", "{not json");
    await local.put("/pods/odd/eth0", JSON.stringify({ containerId: "odd", ifName: "eth0" }));
    expect((await records.load()).map((r) => r.containerId)).toEqual(["ok"]);
    expect(await local.get("/pods/bad/eth0")).toBeUndefined();
    expect(await local.get("/pods/odd/eth0")).toBeUndefined();
    expect(log.records.filter((r) => r.level === "warn").map((r) => r.msg)).toEqual(["[test] dropping unreadable reservation /pods/bad/eth0", "[test] dropping unreadable reservation /pods/odd/eth0"]);
  });

  it("a store that refuses a write or a delete gives TryAgainError (11) naming the attachment", async () => {
    const { records, local } = setup();
    local.put = async () => {
      throw new Error("disk full");
    };
    local.delete = async () => {
      throw new Error("disk full");
    };
    await expect(records.put({ containerId: "c1", ifName: "eth0", address: "10.0.0.2" }, "the reservation of 10.0.0.2")).rejects.toMatchObject({
      code: 11,
      message: expect.stringContaining("[test] could not record the reservation of 10.0.0.2 for c1/eth0"),
    });
    await expect(records.remove({ containerId: "c1", ifName: "eth0" })).rejects.toMatchObject({ code: 11, message: expect.stringContaining("could not record the release of c1/eth0") });
  });
});

describe("attachmentRecord", () => {
  it("keeps identity, the backend's fields, netns and only the metadata that is set, copying labels and ports", () => {
    const labels = { app: "web" };
    const ports = [{ name: "http", containerPort: 80 }];
    const r = attachmentRecord({ containerId: "c1", ifName: "eth0", netns: "/n", namespace: "ns", podName: "p", labels, ports }, { address: "10.0.0.2" });
    expect(JSON.stringify(r)).toBe(
      JSON.stringify({ containerId: "c1", ifName: "eth0", address: "10.0.0.2", netns: "/n", namespace: "ns", podName: "p", labels: { app: "web" }, ports: [{ name: "http", containerPort: 80 }] }),
    );
    expect(r.labels).not.toBe(labels);
    expect(r.ports![0]).not.toBe(ports[0]);
    expect(attachmentRecord({ containerId: "c2", ifName: "net1", netns: "/m" }, { addresses: [] })).toEqual({ containerId: "c2", ifName: "net1", addresses: [], netns: "/m" });
  });
});
