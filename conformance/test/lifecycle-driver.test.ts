/**
 * The lifecycle driver seam (src/lifecycle-driver.ts): section B's checks judged over a driver that
 * is neither the simulator nor the kernel — an in-memory node written here, with one behaviour bent
 * per case — so each rule is seen to decide from what the driver observes (not from the
 * simulator), and to name the attachment and node.
 */
import type { AttachResult, NodeDataplane, PodAttachment, PodRef } from "@cnikit/core";
import { describe, expect, it } from "vitest";
import { LIFECYCLE_CHECKS, runLifecycleCheck } from "../src/checks/lifecycle.ts";
import type { LifecycleContext } from "../src/checks/lifecycle.ts";
import { CLUSTER_STORE_LABEL } from "../src/lifecycle-driver.ts";
import type { LifecycleDriver, StoreSnapshot } from "../src/lifecycle-driver.ts";

const CTX: LifecycleContext = {
  summary: { podRanges: ["10.9.0.0/16"], convergenceMs: 1000 },
  backend: {
    parseConfig(raw) {
      if (raw === null || typeof raw !== "object") throw Object.assign(new Error("not a config"), { code: 7 });
      return raw;
    },
  },
};

/** What a case bends in the in-memory node. */
interface Bends {
  /** DEL forgets the interface but keeps the address reserved (and its record in the store). */
  leakOnDel?: boolean;
  /** CHECK passes for anything. */
  checkAlwaysPasses?: boolean;
  /** A second DEL of the same attachment fails. */
  secondDelFails?: boolean;
}

/** Two nodes with a share of 30 addresses each, an address per ADD, records in a cluster store. */
function memoryDriver(bends: Bends = {}): LifecycleDriver {
  let clock = 0;
  const store = new Map<string, string>();
  const nodes = ["m-1", "m-2"] as const;
  const pods = new Map<string, { node: string; address: string }>();
  const reserved = new Map<string, Set<string>>(nodes.map((n) => [n, new Set<string>()]));
  const deleted = new Set<string>();
  const base = (node: string): number => (node === "m-1" ? 0 : 64);
  const gateway = (node: string): string => `10.9.0.${base(node) + 31}`;
  const keyOf = (r: PodRef): string => `${r.containerId}/${r.ifName}`;
  const coded = (code: number, msg: string): Error => Object.assign(new Error(msg), { code });
  const attach = async (node: string, pod: PodAttachment): Promise<AttachResult> => {
    const k = keyOf(pod);
    let p = pods.get(k);
    if (!p) {
      const held = reserved.get(node)!;
      const wanted = pod.requestedIps?.[0];
      let address: string | undefined;
      if (wanted !== undefined) {
        if (!wanted.startsWith("10.9.0.")) throw coded(7, `requested ${wanted} is outside the pod range`);
        if (held.has(wanted)) throw coded(101, `${wanted} is held`);
        address = wanted;
      } else {
        for (let i = 1; i <= 30 && address === undefined; i++) if (!held.has(`10.9.0.${base(node) + i}`)) address = `10.9.0.${base(node) + i}`;
      }
      if (address === undefined) throw coded(100, `node ${node}'s share is exhausted`);
      held.add(address);
      p = { node, address };
      pods.set(k, p);
      store.set(`/pods/${k}`, address);
      deleted.delete(k);
    }
    return {
      cniVersion: "1.0.0",
      interfaces: [
        { name: `veth-${pod.containerId}`, mac: "0a:58:00:00:00:01" },
        { name: pod.ifName, mac: "0a:58:00:00:00:02", sandbox: pod.netns, mtu: 1500 },
      ],
      ips: [{ address: `${p.address}/24`, gateway: gateway(node), interface: 1 }],
      routes: [{ dst: "0.0.0.0/0" }],
    } as AttachResult;
  };
  const detach = async (node: string, ref: PodRef): Promise<void> => {
    const k = keyOf(ref);
    if (deleted.has(k) && bends.secondDelFails) throw coded(11, `DEL of ${k} again`);
    const p = pods.get(k);
    if (!p) return;
    pods.delete(k);
    deleted.add(k);
    if (bends.leakOnDel) return;
    reserved.get(p.node)!.delete(p.address);
    store.delete(`/pods/${k}`);
  };
  const dataplane = async (node: string): Promise<NodeDataplane> => ({
    node,
    links: [],
    addresses: [],
    routes: [],
    neighbours: [],
    fdb: [],
    sysctls: {},
    nat: [],
    filters: [],
    pods: [...pods]
      .filter(([, p]) => p.node === node)
      .map(([k, p]) => {
        const [containerId, ifName] = k.split("/") as [string, string];
        return {
          key: k,
          containerId,
          ifName,
          netns: `/run/netns/${containerId}`,
          hostIf: `veth-${containerId}`,
          mac: "0a:58:00:00:00:02",
          mtu: 1500,
          addresses: [`${p.address}/24`],
          gateways: [gateway(node)],
          routes: [{ dst: "0.0.0.0/0", via: gateway(node) }],
        };
      }),
  });
  return {
    name: "memory",
    nodes,
    daemon: false,
    attachment: (containerId, ifName = "eth0", pod) => ({ containerId, ifName, netns: `/run/netns/${containerId}`, namespace: pod?.namespace ?? "default", podName: pod?.podName ?? containerId }),
    attach,
    attachConcurrently: (node, list) => Promise.allSettled(list.map((p) => attach(node, p))),
    detach,
    async check(node, ref) {
      if (bends.checkAlwaysPasses) return;
      if (!pods.has(keyOf(ref)) || pods.get(keyOf(ref))!.node !== node) throw coded(3, `${keyOf(ref)} unknown`);
    },
    async gc(node, valid) {
      const keep = new Set(valid.map(keyOf));
      for (const [k, p] of [...pods]) if (p.node === node && !keep.has(k)) await detach(node, { containerId: k.split("/")[0]!, ifName: k.split("/")[1]! });
    },
    status: async () => ({ ready: true }),
    statusesNotRunning: async () => [{ what: "a stopped memory agent", status: { ready: false, code: 50, reason: "stopped" } }],
    attachNotRunning: async () => ({ what: "ADD before start", error: coded(50, "not started") }),
    restartAgent: async () => undefined,
    addPod: async (node, pod) => [(await attach(node, pod)).ips[0]!.address.split("/")[0]!],
    removePod: detach,
    reachProblems: async () => [],
    dataplane,
    podKeys: async (node) => (await dataplane(node)).pods.map((p) => p.key).sort(),
    async stores() {
      const out: StoreSnapshot = new Map();
      for (const [k, v] of store) out.set(`${CLUSTER_STORE_LABEL}${k}`, v);
      return out;
    },
    passTime: async (ms) => {
      clock += ms;
    },
    now: () => clock,
    settle: async () => ({ settled: true }),
    close: async () => undefined,
  };
}

const check = (id: string) => LIFECYCLE_CHECKS.find((c) => c.id === id)!;
const judge = (id: string, bends?: Bends) => runLifecycleCheck(check(id), async () => memoryDriver(bends), CTX);

describe("section B over a driver that is neither the simulator nor the kernel", () => {
  it("every lifecycle check passes on the well-behaved in-memory node (the cut-off leg is not applicable: the driver cannot cut a node off)", async () => {
    for (const c of LIFECYCLE_CHECKS) {
      const out = await runLifecycleCheck(c, async () => memoryDriver(), CTX);
      expect(out.status === "passed" || out.status === "not applicable", `${c.id}: ${out.status} ${out.reason ?? ""}`).toBe(true);
    }
    const failed = await judge("cni.failed-add-leaks-nothing");
    expect(failed.subResults?.find((s) => s.label.startsWith("failed ADD while the node is cut off"))).toMatchObject({
      status: "not applicable",
      reason: "the memory driver cannot cut one node off from the cluster store",
    });
  });

  it("a DEL that keeps the address turns cni.del-releases red from the driver's stores and its full node, naming the node", async () => {
    const out = await judge("cni.del-releases", { leakOnDel: true });
    expect(out.status).toBe("failed");
    expect(out.reason).toMatch(/still name[s]? container victim-0000-x/);
    expect(out.subResults?.find((s) => s.label.startsWith("exhaustion"))).toMatchObject({ status: "failed", reason: expect.stringMatching(/stayed reserved \(leaked\)/) });
  });

  it("CHECK that passes for anything turns cni.check-detects-missing red; a failing second DEL turns cni.del-idempotent red", async () => {
    expect(await judge("cni.check-detects-missing", { checkAlwaysPasses: true })).toMatchObject({
      status: "failed",
      reason: expect.stringMatching(/CHECK of never-added\/eth0 on node m-1 passed although it was never added/),
    });
    expect(await judge("cni.del-idempotent", { secondDelFails: true })).toMatchObject({ status: "failed", reason: expect.stringMatching(/second DEL of del-twice\/eth0 on node m-1 threw/) });
  });
});
