// cnikit-conformance --store etcd://127.0.0.1:PORT against a real etcd started for this file:
// the checks run on etcd (every cluster under its own prefix, emptied afterwards), the checks that
// need virtual lease expiry or the in-memory outage switch are "not run" with the reason, and an
// unreachable etcd is a usage error.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EtcdDatastore } from "@cnikit/etcd";
import { EtcdProcess, freePort } from "@cnikit/etcd/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../src/cli.ts";
import type { ConformanceReport } from "../src/runner-entry.ts";

let etcd: EtcdProcess;
beforeAll(async () => {
  etcd = await EtcdProcess.start();
});
afterAll(async () => {
  await etcd?.cleanup();
});

function io(cwd: string) {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { stdout: (t: string) => void out.push(t), stderr: (t: string) => void err.push(t), cwd } };
}

describe("cnikit-conformance --store etcd://", () => {
  it("runs the reference backend on etcd and leaves nothing behind", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cnikit-conformance-etcd-"));
    writeFileSync(join(dir, "reference.json"), JSON.stringify({ network: "10.250.0.0/16", natOutgoing: true }));
    const t = io(dir);
    const store = `etcd://127.0.0.1:${etcd.port}/cnikit-cli-test`;
    const code = await main(
      [
        "--backend",
        "@cnikit/reference",
        "--config",
        "reference.json",
        "--nodes",
        "3",
        "--store",
        store,
        "--report",
        "r.json",
        "--checks",
        "A,cni.add-result,dyn.join,dyn.leave,dyn.crash,fault.store-unavailable",
      ],
      t.io,
    );
    expect(t.err.join("")).not.toMatch(/internal error/);
    expect(code, t.out.join("")).toBe(0);
    expect(t.err.join("")).toMatch(/store etcd:\/\/127\.0\.0\.1:\d+\/cnikit-cli-test\/[0-9a-f]{8}/);
    const report = JSON.parse(readFileSync(join(dir, "r.json"), "utf8")) as ConformanceReport;
    expect(report.store).toMatch(/^etcd:\/\/127\.0\.0\.1:\d+\/cnikit-cli-test\//);
    const status = Object.fromEntries(report.results.map((r) => [r.id, r.status]));
    expect(status["reach.pod-to-pod.cross-node"]).toBe("passed");
    expect(status["dyn.join"]).toBe("passed");
    expect(status["dyn.leave"]).toBe("passed");
    expect(status["dyn.crash"]).toBe("not run");
    expect(report.results.find((r) => r.id === "dyn.crash")!.reason).toMatch(/needs a virtual-clock store/);
    expect(status["fault.store-unavailable"]).toBe("not run");
    // The clusters really used etcd, and were emptied afterwards: no key, no lease left.
    expect(report.results.find((r) => r.id === "dyn.join")!.metrics?.storeOps).toBeGreaterThan(0);
    const raw = await EtcdDatastore.connect({ endpoints: [etcd.endpoint], prefix: "/cnikit-cli-test/" });
    try {
      expect((await raw.list("")).items).toEqual([]);
      expect(await raw.revision()).toBeGreaterThan(10);
    } finally {
      await raw.close();
    }
    expect(await etcd.revokeAllLeases()).toBe(0);
  });

  it("exits 2 when etcd cannot be reached", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cnikit-conformance-etcd-"));
    writeFileSync(join(dir, "c.json"), "{}");
    const t = io(dir);
    const code = await main(["--backend", "@cnikit/reference", "--config", "c.json", "--store", `etcd://127.0.0.1:${await freePort()}`], t.io);
    expect(code).toBe(2);
    expect(t.err.join("")).toMatch(/cannot reach etcd/);
  });
});
