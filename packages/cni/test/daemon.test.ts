/**
 * CniDaemon in process (`handle`), with the flannel backend on memory stores and a fake renderer:
 * the operations of DESIGN.md's checklist (items 25-36) and the suite's section B through the agent.
 */
import { builtinBackend } from "@cnikit/backends";
import { KernelLacksError } from "@cnikit/core";
import { afterEach, describe, expect, it } from "vitest";
import { SUPPORTED_VERSIONS, formatResult } from "../src/protocol.ts";
import { FakeApplier, flannelDaemon, gatedBackend, netconf, until, type TestDaemon } from "./helpers.ts";

const running: TestDaemon[] = [];
afterEach(async () => {
  for (const d of running.splice(0)) await d.daemon.stop();
});

async function daemon(options: Parameters<typeof flannelDaemon>[0] = {}): Promise<TestDaemon> {
  const d = await flannelDaemon(options);
  running.push(d);
  return d;
}

function env(command: string, cid = "c1", extra: Record<string, string | undefined> = {}) {
  return { CNI_COMMAND: command, CNI_CONTAINERID: cid, CNI_NETNS: `/var/run/netns/${cid}`, CNI_IFNAME: "eth0", ...extra };
}

async function call(d: TestDaemon, e: Record<string, string | undefined>, stdin = netconf()) {
  const r = await d.daemon.handle(e, stdin);
  return { ...r, json: r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, unknown>) : undefined };
}

function addressOf(json: Record<string, unknown> | undefined): string {
  const ips = json?.["ips"] as { address: string }[] | undefined;
  if (!ips?.[0]) throw new Error(`no ips in ${JSON.stringify(json)}`);
  return ips[0].address;
}

async function reserved(d: TestDaemon): Promise<string[]> {
  return (await d.local.list("/flannel/ipam/pods/")).items.map((kv) => kv.key.slice("/flannel/ipam/pods/".length));
}

describe("CniDaemon ADD", () => {
  it.each(SUPPORTED_VERSIONS.filter((v) => v >= "0.3.0").map((v) => [v]))("answers ADD at %s in that version's shape (item 23, section B)", async (version) => {
    const d = await daemon();
    const r = await call(d, env("ADD"), netconf({ cniVersion: version }));
    expect(r.exitCode).toBe(0);
    const json = r.json!;
    expect(json["cniVersion"]).toBe(version);
    const ips = json["ips"] as Record<string, unknown>[];
    expect(ips).toHaveLength(1);
    expect(ips[0]!["address"]).toMatch(/^10\.244\.\d+\.2\/24$/);
    expect(ips[0]!["interface"]).toBe(2);
    if (version === "1.0.0" || version === "1.1.0") expect(ips[0]).not.toHaveProperty("version");
    else expect(ips[0]!["version"]).toBe("4");
    expect((json["routes"] as unknown[]).length).toBeGreaterThan(0);
  });

  it("answers ADD at 0.1.0 / 0.2.0 with ip4", async () => {
    const d = await daemon();
    const r = await call(d, env("ADD"), netconf({ cniVersion: "0.2.0" }));
    expect(r.exitCode).toBe(0);
    expect((r.json!["ip4"] as Record<string, unknown>)["ip"]).toMatch(/^10\.244\.\d+\.2\/24$/);
    expect(r.json).not.toHaveProperty("ips");
  });

  it("item 25: lists every interface it created, the host side included; the container one carries sandbox", async () => {
    const d = await daemon();
    const r = await call(d, env("ADD", "c1"));
    const ifaces = r.json!["interfaces"] as { name: string; sandbox?: string }[];
    const pod = d.applier.last!.pods.find((p) => p.key === "c1/eth0")!;
    expect(ifaces.map((i) => i.name)).toEqual(expect.arrayContaining([pod.hostIf, "eth0"]));
    expect(ifaces.find((i) => i.name === "eth0")!.sandbox).toBe("/var/run/netns/c1");
    expect(ifaces.find((i) => i.name === pod.hostIf)!.sandbox).toBeUndefined();
    const ip = (r.json!["ips"] as { interface: number }[])[0]!;
    expect(ifaces[ip.interface]!.name).toBe("eth0");
  });

  it("returns only after the pod was applied, and the applied pod matches the result", async () => {
    const d = await daemon();
    d.applier.delayMs = 30;
    const r = await call(d, env("ADD", "c1"));
    const pod = d.applier.last!.pods.find((p) => p.key === "c1/eth0");
    expect(pod?.addresses).toEqual([addressOf(r.json)]);
    expect(pod?.netns).toBe("/var/run/netns/c1");
  });

  it("item 26: ADD onto an ifname that already exists in the container fails with 108, leaving the reservation and the interface untouched", async () => {
    const d = await daemon();
    const first = await call(d, env("ADD", "c1"));
    const applied = d.applier.last!.pods.find((p) => p.key === "c1/eth0");
    const applies = d.applier.applied.length;
    const second = await call(d, env("ADD", "c1"));
    expect(second.exitCode).toBe(1);
    expect(second.json).toMatchObject({ cniVersion: "1.0.0", code: 108, msg: expect.stringContaining("interface eth0 already exists in the container /var/run/netns/c1"), details: "c1/eth0" });
    expect(second.json!["msg"]).toContain(addressOf(first.json));
    expect(await reserved(d)).toEqual(["c1/eth0"]);
    expect(d.daemon.nodeAgent!.dataplane().pods.find((p) => p.key === "c1/eth0")).toEqual(applied);
    // Nothing re-applied or removed: the refusal happens before the agent is asked.
    expect(d.applier.applied.length).toBe(applies);
    expect((await call(d, env("CHECK", "c1"), netconf({ prevResult: first.json }))).exitCode).toBe(0);
  });

  it("item 26: a second ADD with another CNI_NETNS fails with 108 naming both namespaces and never returns the first as sandbox", async () => {
    const d = await daemon();
    await call(d, env("ADD", "c1"));
    const other = await call(d, env("ADD", "c1", { CNI_NETNS: "/var/run/netns/elsewhere" }));
    expect(other.exitCode).toBe(1);
    expect(other.json).toMatchObject({ code: 108, msg: expect.stringContaining("already exists in network namespace /var/run/netns/c1, not /var/run/netns/elsewhere") });
    expect(other.json).not.toHaveProperty("interfaces");
    expect(await reserved(d)).toEqual(["c1/eth0"]);
    expect(d.applier.last!.pods.find((p) => p.key === "c1/eth0")?.netns).toBe("/var/run/netns/c1");
    // After DEL the attachment can be made in the new namespace.
    expect((await call(d, env("DEL", "c1"))).exitCode).toBe(0);
    const fresh = await call(d, env("ADD", "c1", { CNI_NETNS: "/var/run/netns/elsewhere" }));
    expect((fresh.json!["interfaces"] as { name: string; sandbox?: string }[]).find((i) => i.name === "eth0")?.sandbox).toBe("/var/run/netns/elsewhere");
  });

  it("item 55: a duplicate (containerId, ifName) ADD fails, also two at once; another ifName or container id gets a new address", async () => {
    const d = await daemon();
    const first = await call(d, env("ADD", "c1"));
    expect((await call(d, env("ADD", "c1"))).json?.["code"]).toBe(108);
    const both = await Promise.all([call(d, env("ADD", "c2")), call(d, env("ADD", "c2"))]);
    expect(both.map((r) => r.exitCode).sort()).toEqual([0, 1]);
    expect(both.find((r) => r.exitCode === 1)!.json?.["code"]).toBe(108);
    const c2 = both.find((r) => r.exitCode === 0)!;
    const net1 = await call(d, env("ADD", "c1", { CNI_IFNAME: "net1" }));
    const c3 = await call(d, env("ADD", "c3"));
    const addresses = [first, c2, net1, c3].map((r) => addressOf(r.json));
    expect(new Set(addresses).size).toBe(4);
    expect((await reserved(d)).sort()).toEqual(["c1/eth0", "c1/net1", "c2/eth0", "c3/eth0"]);
  });

  it("items 26, 55: a retried ADD whose first reply was lost before the interface was made finishes it with the same address; then a further ADD fails", async () => {
    const d = await daemon();
    d.applier.failAll = true;
    // The agent holds c1 but no apply has made its interface (what a lost reply leaves behind).
    const held = await d.daemon.nodeAgent!.attach({ containerId: "c1", ifName: "eth0", netns: "/var/run/netns/c1" });
    const failing = await call(d, env("ADD", "c1"));
    expect(failing.json).toMatchObject({ code: 999, msg: expect.stringContaining("fake renderer") });
    expect(await reserved(d)).toEqual(["c1/eth0"]);
    // No await between the flip and the ADD's admission: the loop's background retry (a timer)
    // cannot make the interface first.
    d.applier.failAll = false;
    const retried = await call(d, env("ADD", "c1"));
    expect(retried.exitCode).toBe(0);
    expect(addressOf(retried.json)).toBe(held.ips[0]!.address);
    expect(await reserved(d)).toEqual(["c1/eth0"]);
    expect((await call(d, env("ADD", "c1"))).json?.["code"]).toBe(108);
  });

  it("item 27: a failed ADD (renderer fails) leaves nothing reserved or applied, and says why", async () => {
    const d = await daemon();
    d.applier.failFor.add("bad");
    const r = await call(d, env("ADD", "bad"));
    expect(r.exitCode).toBe(1);
    expect(r.json).toMatchObject({ code: 999, msg: expect.stringContaining("fake renderer: cannot create the veth of bad/eth0") });
    expect(await reserved(d)).toEqual([]);
    expect(d.daemon.nodeAgent!.dataplane().pods).toEqual([]);
    await until(() => d.applier.last?.pods.length === 0 && d.applier.applied.length > 0);
    expect((await call(d, env("CHECK", "bad"), netconf({ prevResult: {} }))).json?.["code"]).toBe(3);
    d.applier.failFor.clear();
    expect((await call(d, env("ADD", "bad"))).exitCode).toBe(0);
  });

  it("item 27: a pod the renderer reports as failed (the rest applied) fails its ADD and leaves nothing reserved", async () => {
    const d = await daemon();
    await call(d, env("ADD", "ok"));
    d.applier.reportFailed.add("nons");
    const r = await call(d, env("ADD", "nons"));
    expect(r.exitCode).toBe(1);
    expect(r.json).toMatchObject({ code: 999, msg: expect.stringContaining("could not set up the interfaces of nons/eth0: fake renderer: /var/run/netns/nons is not a network namespace") });
    expect(await reserved(d)).toEqual(["ok/eth0"]);
    await until(() => d.applier.last?.pods.map((p) => p.key).join() === "ok/eth0");
  });

  it("fills the host veth's MAC from the renderer's report", async () => {
    const d = await daemon();
    const r = await call(d, env("ADD", "c1"));
    const hostIf = d.applier.last!.pods[0]!.hostIf;
    const ifaces = r.json!["interfaces"] as { name: string; mac?: string }[];
    expect(ifaces.find((i) => i.name === hostIf)?.mac).toBe("ee:ee:ee:00:00:01");
  });

  it("item 27: a refused re-ADD of a pod that exists keeps the pod, even while applying fails", async () => {
    const d = await daemon();
    await call(d, env("ADD", "c1"));
    d.applier.failAll = true;
    const r = await call(d, env("ADD", "c1"));
    expect(r.json?.["code"]).toBe(108);
    expect(await reserved(d)).toEqual(["c1/eth0"]);
    expect(d.daemon.nodeAgent!.dataplane().pods.map((p) => p.key)).toEqual(["c1/eth0"]);
  });

  it("section B: a requested address (CNI_ARGS IP) is handed out; a taken one fails with 101 and reserves nothing", async () => {
    const d = await daemon();
    const first = await call(d, env("ADD", "c1"));
    const subnet = addressOf(first.json).split(".").slice(0, 3).join(".");
    const r = await call(d, env("ADD", "c2", { CNI_ARGS: `IgnoreUnknown=1;IP=${subnet}.77;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web` }));
    expect(addressOf(r.json)).toBe(`${subnet}.77/24`);
    const pod = d.applier.last!.pods.find((p) => p.key === "c2/eth0")!;
    expect([pod.namespace, pod.podName]).toEqual(["default", "web"]);
    const taken = await call(d, env("ADD", "c3", { CNI_ARGS: `IP=${subnet}.77` }));
    expect(taken.json?.["code"]).toBe(101);
    expect(await reserved(d)).toEqual(["c1/eth0", "c2/eth0"]);
  });

  it("chaining: an ADD given a prevResult re-emits it with its own interfaces appended", async () => {
    const d = await daemon();
    const prev = formatResult({ interfaces: [{ name: "dummy0" }], ips: [{ address: "192.168.7.2/24", interface: 0 }], routes: [] }, "1.0.0");
    const r = await call(d, env("ADD", "c1"), netconf({ prevResult: prev }));
    const ifaces = r.json!["interfaces"] as { name: string }[];
    const ips = r.json!["ips"] as { address: string; interface: number }[];
    expect(ifaces[0]!.name).toBe("dummy0");
    expect(ips[0]).toEqual({ address: "192.168.7.2/24", interface: 0 });
    expect(ifaces[ips[1]!.interface]!.name).toBe("eth0");
  });

  it("runs different pods concurrently and shares applies between them", async () => {
    const d = await daemon();
    d.applier.delayMs = 20;
    const before = d.daemon.stats().applies;
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => call(d, env("ADD", `p${i}`))));
    expect(results.every((r) => r.exitCode === 0)).toBe(true);
    const addresses = results.map((r) => addressOf(r.json));
    expect(new Set(addresses).size).toBe(30);
    expect(d.daemon.stats().applies - before).toBeLessThan(30);
    expect(d.applier.last!.pods).toHaveLength(30);
  });

  it("ADD fails with 11 when the agent does not come up within agentWaitMs", async () => {
    const gated = gatedBackend(builtinBackend("flannel").backend);
    const d = await daemon({ backend: gated.backend, start: false, agentWaitMs: 100 });
    await d.daemon.start();
    const early = await call(d, env("ADD", "c1"));
    expect(early.json).toMatchObject({ code: 11, msg: expect.stringContaining("still starting") });
    gated.open();
    await d.daemon.agentStarted;
    expect((await call(d, env("ADD", "c1"))).exitCode).toBe(0);
  });

  it("ADD waits for a starting agent and succeeds once it runs", async () => {
    const gated = gatedBackend(builtinBackend("flannel").backend);
    const d = await daemon({ backend: gated.backend, start: false });
    await d.daemon.start();
    const waiting = call(d, env("ADD", "c1"));
    await new Promise((r) => setTimeout(r, 50));
    expect(d.daemon.phase).toBe("starting");
    gated.open();
    const r = await waiting;
    expect(r.exitCode).toBe(0);
    expect(addressOf(r.json)).toMatch(/^10\.244\./);
  });
});

describe("CniDaemon DEL", () => {
  it("item 28: DEL of an unknown container, and a second DEL, succeed", async () => {
    const d = await daemon();
    expect(await call(d, env("DEL", "never"))).toMatchObject({ exitCode: 0, stdout: "" });
    await call(d, env("ADD", "c1"));
    expect((await call(d, env("DEL", "c1"))).exitCode).toBe(0);
    expect((await call(d, env("DEL", "c1"))).exitCode).toBe(0);
    expect(await reserved(d)).toEqual([]);
  });

  it("item 29: DEL without CNI_NETNS (netns gone) still releases the address", async () => {
    const d = await daemon();
    const add = await call(d, env("ADD", "c1"));
    const address = addressOf(add.json).split("/")[0]!;
    const r = await call(d, env("DEL", "c1", { CNI_NETNS: undefined }));
    expect(r.exitCode).toBe(0);
    expect(d.applier.last!.pods).toEqual([]);
    const again = await call(d, env("ADD", "c2", { CNI_ARGS: `IP=${address}` }));
    expect(addressOf(again.json)).toBe(`${address}/24`);
  });

  it("item 30: DEL works with and without prevResult, and with a malformed one", async () => {
    const d = await daemon();
    const add = await call(d, env("ADD", "c1"));
    expect((await call(d, env("DEL", "c1"), netconf({ prevResult: add.json }))).exitCode).toBe(0);
    await call(d, env("ADD", "c2"));
    expect((await call(d, env("DEL", "c2"))).exitCode).toBe(0);
    await call(d, env("ADD", "c3"));
    expect((await call(d, env("DEL", "c3"), netconf({ prevResult: { ips: 7 } }))).exitCode).toBe(0);
    expect(await reserved(d)).toEqual([]);
  });

  it("DEL whose interface cannot be removed fails with 11 but the address is released", async () => {
    const d = await daemon();
    await call(d, env("ADD", "c1"));
    d.applier.failAll = true;
    const r = await call(d, env("DEL", "c1"));
    expect(r.json).toMatchObject({ code: 11, msg: expect.stringContaining("the address is released") });
    expect(await reserved(d)).toEqual([]);
    d.applier.failAll = false;
    expect((await call(d, env("DEL", "c1"))).exitCode).toBe(0);
    expect(d.applier.last!.pods).toEqual([]);
  });
});

describe("CniDaemon CHECK", () => {
  it("item 31: CHECK without prevResult fails with 7", async () => {
    const d = await daemon();
    await call(d, env("ADD", "c1"));
    const r = await call(d, env("CHECK", "c1"));
    expect(r.json).toMatchObject({ code: 7, msg: expect.stringContaining("prevResult") });
  });

  it("item 32: CHECK right after ADD passes silently", async () => {
    const d = await daemon();
    const add = await call(d, env("ADD", "c1"));
    expect(await call(d, env("CHECK", "c1"), netconf({ prevResult: add.json }))).toMatchObject({ exitCode: 0, stdout: "" });
  });

  it("item 33: CHECK detects a missing reservation (106), a broken interface (106) and a wrong address (106)", async () => {
    const d = await daemon();
    const add = await call(d, env("ADD", "c1"));
    const prevResult = add.json;
    d.applier.broken.add("c1/eth0");
    expect((await call(d, env("CHECK", "c1"), netconf({ prevResult }))).json).toMatchObject({ code: 106, msg: expect.stringContaining("is missing") });
    d.applier.broken.clear();
    const wrong = JSON.parse(JSON.stringify(prevResult)) as { ips: { address: string }[] };
    wrong.ips[0]!.address = "10.244.250.250/24";
    expect((await call(d, env("CHECK", "c1"), netconf({ prevResult: wrong }))).json).toMatchObject({ code: 106, msg: expect.stringContaining("10.244.250.250/24") });
    await d.local.delete("/flannel/ipam/pods/c1/eth0");
    expect((await call(d, env("CHECK", "c1"), netconf({ prevResult }))).json).toMatchObject({ code: 106, msg: expect.stringContaining("reservation") });
  });

  it("CHECK of an attachment never made fails with 3", async () => {
    const d = await daemon();
    expect((await call(d, env("CHECK", "ghost"), netconf({ prevResult: {} }))).json?.["code"]).toBe(3);
  });
});

describe("CniDaemon STATUS and GC", () => {
  const v11 = (extra: Record<string, unknown> = {}) => netconf({ cniVersion: "1.1.0", ...extra });

  it("item 35: STATUS is 0 when ready, 50 while the agent has not started, 51 while applying fails", async () => {
    const gated = gatedBackend(builtinBackend("flannel").backend);
    const d = await daemon({ backend: gated.backend, start: false });
    await d.daemon.start();
    const starting = await call(d, { CNI_COMMAND: "STATUS" }, v11());
    expect(starting.json).toMatchObject({ code: 50, msg: expect.stringContaining("still starting") });
    gated.open();
    await d.daemon.agentStarted;
    expect(await call(d, { CNI_COMMAND: "STATUS" }, v11())).toMatchObject({ exitCode: 0, stdout: "" });
    d.applier.failAll = true;
    await call(d, env("ADD", "c1"));
    expect((await call(d, { CNI_COMMAND: "STATUS" }, v11())).json).toMatchObject({ code: 51, msg: expect.stringContaining("fake renderer") });
    d.applier.failAll = false;
    await call(d, env("ADD", "c2"));
    expect((await call(d, { CNI_COMMAND: "STATUS" }, v11())).exitCode).toBe(0);
  });

  it("item 35: STATUS of a stopped daemon is 50 (and ADD 11)", async () => {
    const d = await daemon();
    await d.daemon.stop();
    expect((await call(d, { CNI_COMMAND: "STATUS" }, v11())).json).toMatchObject({ code: 50, msg: expect.stringContaining("stopping") });
    expect((await call(d, env("ADD", "c1"))).json?.["code"]).toBe(11);
  });

  it("item 36: GC frees exactly the attachments not listed, and takes an empty or null list", async () => {
    const d = await daemon();
    for (const cid of ["a", "b", "c"]) await call(d, env("ADD", cid));
    const gc = await call(
      d,
      { CNI_COMMAND: "GC", CNI_PATH: "/opt/cni/bin" },
      v11({
        "cni.dev/valid-attachments": [
          { containerID: "a", ifname: "eth0" },
          { containerID: "c", ifname: "eth0" },
        ],
      }),
    );
    expect(gc).toMatchObject({ exitCode: 0, stdout: "" });
    expect(await reserved(d)).toEqual(["a/eth0", "c/eth0"]);
    expect(d.applier.last!.pods.map((p) => p.key).sort()).toEqual(["a/eth0", "c/eth0"]);
    expect((await call(d, { CNI_COMMAND: "GC", CNI_PATH: "/opt/cni/bin" }, v11({ "cni.dev/valid-attachments": null }))).exitCode).toBe(0);
    expect(await reserved(d)).toEqual([]);
    await call(d, env("ADD", "d"));
    expect((await call(d, { CNI_COMMAND: "GC", CNI_PATH: "/opt/cni/bin" }, v11({ "cni.dev/valid-attachments": [] }))).exitCode).toBe(0);
    expect(await reserved(d)).toEqual([]);
  });

  it("item 47: GC waits for ADDs in flight and no ADD starts while GC runs", async () => {
    const d = await daemon();
    d.applier.delayMs = 40;
    const adds = ["x", "y"].map((cid) => call(d, env("ADD", cid)));
    await new Promise((r) => setTimeout(r, 5));
    const gc = call(d, { CNI_COMMAND: "GC", CNI_PATH: "/opt/cni/bin" }, v11({ "cni.dev/valid-attachments": [{ containerID: "x", ifname: "eth0" }] }));
    const late = (async () => {
      await new Promise((r) => setTimeout(r, 5));
      return call(d, env("ADD", "z"));
    })();
    const [ax, ay] = (await Promise.all(adds)) as [Awaited<(typeof adds)[0]>, Awaited<(typeof adds)[0]>];
    expect([ax.exitCode, ay.exitCode, (await gc).exitCode, (await late).exitCode]).toEqual([0, 0, 0, 0]);
    // y finished before GC (freed by it); z started after GC (kept).
    expect(await reserved(d)).toEqual(["x/eth0", "z/eth0"]);
  });
});

describe("CniDaemon lifecycle", () => {
  it("stop leaves the dataplane to the renderer (close, no teardown apply) and refuses new calls", async () => {
    const d = await daemon();
    await call(d, env("ADD", "c1"));
    const applies = d.applier.applied.length;
    await d.daemon.stop();
    expect(d.applier.closed).toBe(true);
    expect(d.applier.applied.length).toBe(applies);
    expect(d.applier.last!.pods.map((p) => p.key)).toEqual(["c1/eth0"]);
    expect((await call(d, env("ADD", "c2"))).json?.["code"]).toBe(11);
  });

  it("a restarted daemon on the same node stores keeps its pods and applies them again", async () => {
    const first = await daemon();
    const add = await call(first, env("ADD", "c1"));
    await first.daemon.stop();
    const applier = new FakeApplier();
    const second = await daemon({ store: first.store, local: first.local, applier });
    expect(applier.last!.pods.map((p) => p.key)).toEqual(["c1/eth0"]);
    expect((await call(second, env("CHECK", "c1"), netconf({ prevResult: add.json }))).exitCode).toBe(0);
    // Its interface exists again, so a second ADD is refused (item 26), the pod kept.
    const again = await call(second, env("ADD", "c1"));
    expect(again.json).toMatchObject({ code: 108, msg: expect.stringContaining(addressOf(add.json)) });
    expect(await reserved(second)).toEqual(["c1/eth0"]);
  });

  it("a bad backend config is refused by the constructor, naming the field", async () => {
    await expect(flannelDaemon({ backendConfig: { Network: "10.244.0.0/16", SubnetLen: 31 }, start: false })).rejects.toMatchObject({ code: 7, field: "SubnetLen" });
  });

  it("a renderer that cannot build the node's dataplane at all (kernel lacks a feature) fails the start", async () => {
    const applier = new FakeApplier();
    applier.throwError = new KernelLacksError("ipip");
    const d = await daemon({ applier, start: false });
    await d.daemon.start();
    await expect(d.daemon.agentStarted).rejects.toBeInstanceOf(KernelLacksError);
    expect(d.daemon.phase).toBe("failed");
    expect((await call(d, { CNI_COMMAND: "STATUS" }, netconf({ cniVersion: "1.1.0" }))).json).toMatchObject({ code: 50, msg: expect.stringContaining("kernel lacks ipip") });
    expect((await call(d, env("ADD", "c1"))).json).toMatchObject({ code: 104, msg: expect.stringContaining("kernel lacks ipip") });
  });

  it("a fatal agent start error fails agentStarted and STATUS says why", async () => {
    const d = await daemon({
      backendConfig: { Network: "10.244.0.0/16", Backend: { Type: "host-gw" } },
      node: { name: "n", underlay: [{ iface: "eth0", address: "fd00::1", prefixLength: 64 }] },
      start: false,
    });
    await d.daemon.start();
    await expect(d.daemon.agentStarted).rejects.toBeInstanceOf(Error);
    expect(d.daemon.phase).toBe("failed");
    expect((await call(d, { CNI_COMMAND: "STATUS" }, netconf({ cniVersion: "1.1.0" }))).json).toMatchObject({ code: 50, msg: expect.stringContaining("failed to start") });
  });
});

describe("CniDaemon ADD asking for a MAC (CNI_ARGS MAC=, runtimeConfig.mac)", () => {
  const planned = (d: TestDaemon, cid: string) => d.daemon.nodeAgent!.dataplane().pods.find((p) => p.key === `${cid}/eth0`)?.mac;

  it("refuses a MAC other than the plan's, naming where it came from, and keeps nothing reserved", async () => {
    const d = await daemon();
    const byArgs = await call(d, env("ADD", "m1", { CNI_ARGS: "IgnoreUnknown=1;MAC=02:00:00:00:00:01" }));
    expect(byArgs.exitCode).toBe(1);
    expect(byArgs.json).toMatchObject({ code: 4, msg: expect.stringContaining("MAC=02:00:00:00:00:01"), details: "CNI_ARGS MAC" });
    expect(String(byArgs.json!["msg"])).toContain("tuning plugin");
    const byCapability = await call(d, env("ADD", "m1"), netconf({ runtimeConfig: { mac: "02:00:00:00:00:02" } }));
    expect(byCapability.json).toMatchObject({ code: 7, msg: expect.stringContaining("runtimeConfig.mac") });
    expect(await reserved(d)).toEqual([]);
    const notAMac = await call(d, env("ADD", "m1", { CNI_ARGS: "MAC=nope" }));
    expect(notAMac.json).toMatchObject({ code: 4, details: "CNI_ARGS MAC" });
    // Nothing was left behind: the same attachment ADDs at once.
    expect((await call(d, env("ADD", "m1"))).exitCode).toBe(0);
  });

  it("accepts the plan's own MAC (podman network reload: DEL, then ADD with the IP and MAC the container had)", async () => {
    const d = await daemon();
    const first = await call(d, env("ADD", "m2"));
    const ip = addressOf(first.json).split("/")[0]!;
    const mac = planned(d, "m2")!;
    expect(mac).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    expect((await call(d, env("DEL", "m2"))).exitCode).toBe(0);
    const again = await call(d, env("ADD", "m2", { CNI_ARGS: `IgnoreUnknown=1;IP=${ip};MAC=${mac.toUpperCase()}` }));
    expect(again.exitCode, again.stdout).toBe(0);
    expect(addressOf(again.json).split("/")[0]).toBe(ip);
    expect(planned(d, "m2")).toBe(mac);
  });
});
