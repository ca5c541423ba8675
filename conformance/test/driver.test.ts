/**
 * The driver seam (src/driver.ts): section A's checks judged over a driver that is neither the
 * simulator nor the kernel — a table of observations written by hand — so each rule is seen to
 * turn red on exactly the observation it is about, to name the pod, address and node, and to treat
 * a round-trip driver (the kernel's) the way the kernel needs.
 */
import type { NetworkSummary } from "@cnikit/core";
import { describe, expect, it } from "vitest";
import { CONCURRENT_IPAM_CHECK, DATAPLANE_CHECKS } from "../src/driver.ts";
import type { ChurnDriver, DpEndpoint, EgressDelivery, ModelDataplane, NodeMtus } from "../src/driver.ts";

const SUMMARY: NetworkSummary = { podRanges: ["10.9.0.0/16"], natOutgoing: true, encapsulations: ["vxlan"], convergenceMs: 1000, crashDetectionMs: 1000 };

const pod = (id: string, node: string, address: string): DpEndpoint => ({ kind: "pod", id, node, addresses: [address], label: `pod default/${id} (${address}) on node ${node}` });
const nodeEp = (name: string, address: string): DpEndpoint => ({ kind: "node", id: name, node: name, addresses: [address], label: `node ${name} (${address})` });

/** Observations of a healthy 2-node cluster, each replaceable by a test. */
interface Table {
  pods: DpEndpoint[];
  nodes: DpEndpoint[];
  externals: DpEndpoint[];
  unreachable: [string, string, string][];
  natted: [string, string, string][];
  delivered: boolean;
  egress: (p: DpEndpoint) => EgressDelivery[];
  reserved: [string, string][];
  mtus: NodeMtus[];
  fullSize: Map<string, string>;
  seesOneWay: boolean;
}

function healthy(): Table {
  return {
    pods: [pod("a", "n1", "10.9.1.2"), pod("b", "n1", "10.9.1.3"), pod("c", "n2", "10.9.2.2")],
    nodes: [nodeEp("n1", "192.0.2.10"), nodeEp("n2", "192.0.2.11")],
    externals: [{ kind: "external", id: "internet", addresses: ["203.0.113.9"], label: "external host internet" }],
    unreachable: [],
    natted: [],
    delivered: true,
    egress: (p) => [{ proto: "tcp", delivered: true, seenSource: p.node === "n1" ? "192.0.2.10" : "192.0.2.11", why: "delivered" }],
    reserved: [["10.9.1.1", "the gateway of pods on node n1"]],
    mtus: [
      { node: "n1", underlayMtu: 1500, links: [{ kind: "vxlan", name: "vx0", mtu: 1450 }], pods: [{ label: "pod default/a (10.9.1.2) on node n1", mtu: 1450 }] },
      { node: "n2", underlayMtu: 1500, links: [], pods: [{ label: "pod default/c (10.9.2.2) on node n2", mtu: 1450 }] },
    ],
    fullSize: new Map(),
    seesOneWay: true,
  };
}

function driver(t: Table): ModelDataplane {
  return {
    name: "table",
    seesOneWay: t.seesOneWay,
    pods: () => t.pods,
    nodes: () => t.nodes,
    externals: () => t.externals,
    nodeAddress: (n) => t.nodes.find((x) => x.id === n)?.addresses[0],
    async reachFailures(from, to) {
      return t.unreachable
        .map(([a, b, why]) => ({ from: from.find((x) => x.id === a), to: to.find((x) => x.id === b), why }))
        .filter((f): f is { from: DpEndpoint; to: DpEndpoint; why: string } => f.from !== undefined && f.to !== undefined);
    },
    async podSources(list, max) {
      const pairs = list.length * (list.length - 1);
      const examples = t.natted.slice(0, max).map(([a, b, seen]) => ({ from: list.find((x) => x.id === a)!, to: list.find((x) => x.id === b)!, proto: "tcp", seen }));
      return { pairs, delivered: t.delivered ? pairs : 0, nattedPairs: t.natted.length, examples };
    },
    egress: async (p) => t.egress(p),
    async reserveAddresses(reserved) {
      for (const [a, why] of t.reserved) reserved.set(a, why);
    },
    mtus: async () => t.mtus,
    fullSizeProblem: async (a) => t.fullSize.get(a.id),
  };
}

async function judge(id: string, t: Table, summary: NetworkSummary = SUMMARY) {
  const c = DATAPLANE_CHECKS.find((x) => x.id === id);
  if (!c) throw new Error(`no dataplane check ${id}`);
  return c.judge(driver(t), summary);
}

describe("section A over a driver of hand-written observations", () => {
  it("passes every dataplane check on healthy observations", async () => {
    for (const c of DATAPLANE_CHECKS) expect(await c.judge(driver(healthy()), SUMMARY), c.id).toMatchObject({ status: "passed" });
  });

  it.each([
    ["ipam.in-range", (t: Table) => void (t.pods[2] = pod("c", "n2", "172.16.0.5")), /pod default\/c \(172\.16\.0\.5\) on node n2: 172\.16\.0\.5 is outside the pod range\(s\) 10\.9\.0\.0\/16/],
    ["ipam.unique", (t: Table) => void (t.pods[2] = pod("c", "n2", "10.9.1.2")), /10\.9\.1\.2 is held by two live pods: pod default\/a .* and pod default\/c \(10\.9\.1\.2\) on node n2/],
    ["ipam.reserved", (t: Table) => void (t.pods[1] = pod("b", "n1", "10.9.1.1")), /pod default\/b \(10\.9\.1\.1\) on node n1: 10\.9\.1\.1 is reserved \(the gateway of pods on node n1\)/],
    ["ipam.reserved", (t: Table) => void (t.pods[1] = pod("b", "n1", "10.9.255.255")), /10\.9\.255\.255 is reserved \(the broadcast address of pod range 10\.9\.0\.0\/16\)/],
    [
      "reach.pod-to-pod.same-node",
      (t: Table) => void t.unreachable.push(["a", "b", "by udp: timeout"]),
      /pod default\/a \(10\.9\.1\.2\) on node n1 -> pod default\/b \(10\.9\.1\.3\) on node n1: by udp: timeout/,
    ],
    ["reach.pod-to-pod.cross-node", (t: Table) => void t.unreachable.push(["a", "c", "dropped at n1"]), /pod default\/a .* -> pod default\/c \(10\.9\.2\.2\) on node n2: dropped at n1/],
    ["reach.node-to-pod", (t: Table) => void t.unreachable.push(["n2", "a", "no route"]), /node n2 \(192\.0\.2\.11\) -> pod default\/a .*: no route/],
    ["reach.pod-to-node", (t: Table) => void t.unreachable.push(["c", "n1", "filtered"]), /pod default\/c .* -> node n1 \(192\.0\.2\.10\): filtered/],
    [
      "reach.no-nat-between-pods",
      (t: Table) => void t.natted.push(["a", "c", "10.9.1.0"]),
      /^1 of 6 pod pairs arrive NATed: pod default\/a \(10\.9\.1\.2\) on node n1 -> pod default\/c .* by tcp: the receiver saw source 10\.9\.1\.0 instead of 10\.9\.1\.2/,
    ],
    [
      "nat.outgoing",
      (t: Table) => void (t.egress = (p) => [{ proto: "udp", delivered: true, seenSource: p.addresses[0]!, why: "delivered" }]),
      /pod default\/a \(10\.9\.1\.2\) on node n1 -> internet by udp: natOutgoing is on, but the receiver saw source 10\.9\.1\.2 instead of node address 192\.0\.2\.10/,
    ],
    ["nat.outgoing", (t: Table) => void (t.egress = () => [{ delivered: false, why: "dropped at n1 (route)" }]), /pod default\/a .* -> internet \(203\.0\.113\.9\): dropped at n1 \(route\)/],
    [
      "mtu.encap-headroom",
      (t: Table) => void (t.mtus[1]!.pods[0]!.mtu = 1500),
      /pod default\/c \(10\.9\.2\.2\) on node n2 has MTU 1500; the underlay MTU is 1500 and the encapsulation \(vxlan\) needs 50 bytes, so at most 1450/,
    ],
    ["mtu.encap-headroom", (t: Table) => void (t.mtus[0]!.links[0]!.mtu = 1500), /vxlan link vx0 on node n1 has MTU 1500; at most 1450 fits the underlay MTU 1500/],
    ["mtu.encap-headroom", (t: Table) => void t.fullSize.set("b", "fragmentation needed at n1"), /pod default\/b .* -> pod default\/c .*: fragmentation needed at n1/],
  ])("%s turns red on its own observation, naming pod, address and node", async (id, bend, reason) => {
    const t = healthy();
    bend(t);
    const out = await judge(id, t);
    expect(out.status).toBe("failed");
    expect(out.reason).toMatch(reason);
    // Every other dataplane check stays green: the bend is where the rule is.
    const others = ["reach.pod-to-pod.same-node", "reach.pod-to-pod.cross-node", "reach.node-to-pod", "reach.pod-to-node", "reach.no-nat-between-pods"].filter((x) => x !== id);
    for (const other of others) expect((await judge(other, t)).status, other).toBe("passed");
  });

  it("nat.outgoing without natOutgoing: a one-way driver must deliver with the pod's own source; a round-trip driver (the kernel's) may not come back at all", async () => {
    const off = { ...SUMMARY, natOutgoing: false };
    const undelivered = (t: Table) => void (t.egress = () => [{ proto: "tcp", delivered: false, why: "timeout" }]);
    const oneWay = healthy();
    undelivered(oneWay);
    expect((await judge("nat.outgoing", oneWay, off)).status).toBe("failed");
    const roundTrip = healthy();
    roundTrip.seesOneWay = false;
    undelivered(roundTrip);
    expect((await judge("nat.outgoing", roundTrip, off)).status).toBe("passed");
    // Still red when it does come back masqueraded although natOutgoing is off.
    const masq = healthy();
    masq.seesOneWay = false;
    expect((await judge("nat.outgoing", masq, off)).reason).toMatch(/natOutgoing is off, but the receiver saw source 192\.0\.2\.10/);
    // And with natOutgoing on, not delivered is red on either driver.
    expect((await judge("nat.outgoing", roundTrip, SUMMARY)).status).toBe("failed");
  });

  it("reach.no-nat-between-pods is 'not applicable', never passed, when no pod pair delivered anything; nat.outgoing is 'not run' without an external host", async () => {
    const t = healthy();
    t.delivered = false;
    expect(await judge("reach.no-nat-between-pods", t)).toMatchObject({ status: "not applicable", reason: expect.stringMatching(/none of the 6 pod pairs delivered/) });
    const u = healthy();
    u.externals = [];
    expect((await judge("nat.outgoing", u)).status).toBe("not run");
  });
});

describe("ipam.concurrent-unique over a hand-made churn driver", () => {
  /** A cluster whose IPAM hands out 10.9.0.<n>, `bend` deciding n from the ADD's serial. */
  function churn(bend: (serial: number) => number, failCode?: number): ChurnDriver {
    return {
      name: "table",
      async open() {
        let serial = 0;
        const live: DpEndpoint[] = [];
        return {
          nodes: ["n1", "n2"],
          removable: () => [...live],
          async wave(adds, victims) {
            const out: ({ ok: true } | { ok: false; code?: unknown; message: string })[] = [];
            for (const node of adds) {
              const n = serial++;
              if (failCode !== undefined && n === 3) {
                out.push({ ok: false, code: failCode, message: `ADD ${n} failed with code ${failCode}` });
                continue;
              }
              live.push(pod(`q${n}`, node, `10.9.0.${bend(n)}`));
              out.push({ ok: true });
            }
            for (const v of victims) {
              live.splice(
                live.findIndex((x) => x.id === v.id),
                1,
              );
              out.push({ ok: true });
            }
            return out;
          },
          pods: async () => [...live],
          reserveAddresses: async () => undefined,
          close: async () => undefined,
        };
      },
    };
  }
  const ctx = { summary: SUMMARY, seed: 5, runs: 10 };

  it("passes when every ADD gets a fresh address, and exhaustion (100) or try-again (11) are legitimate answers", async () => {
    expect(
      (
        await CONCURRENT_IPAM_CHECK.judge(
          churn((n) => 10 + n),
          ctx,
        )
      ).status,
    ).toBe("passed");
    expect(
      (
        await CONCURRENT_IPAM_CHECK.judge(
          churn((n) => 10 + n, 100),
          ctx,
        )
      ).status,
    ).toBe("passed");
  });

  it("fails on a duplicate address after a wave, and on an ADD failing with another code, naming the schedule", async () => {
    const dup = await CONCURRENT_IPAM_CHECK.judge(
      churn((n) => 10 + (n % 3)),
      ctx,
    );
    expect(dup.status).toBe("failed");
    expect(dup.reason).toMatch(/^schedule \d+ of 10 \(seed 5\): after wave \d+ \(\d+ concurrent ADDs, \d+ DELs\): 10\.9\.0\.1[0-2] is held by two live pods: pod default\/q\d+/);
    const crash = await CONCURRENT_IPAM_CHECK.judge(
      churn((n) => 10 + n, 999),
      ctx,
    );
    expect(crash.status).toBe("failed");
    expect(crash.reason).toMatch(/wave \d+: an operation failed: ADD 3 failed with code 999/);
  });
});
