/**
 * Kernel feature detection against the kernel itself, and refusal of dataplanes the kernel cannot
 * build (this machine's kernel has no ipip, gre, wireguard, dummy): a clear KernelFeatureError,
 * thrown before the namespace is touched.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CniCode, KernelLacksError, emptyDataplane, type NodeDataplane } from "@cnikit/core";
import { ipPool, parseCalicoConfig } from "@cnikit/calico";
import { planDataplane } from "@cnikit/calico/internal";
import { KERNEL_FEATURES, KernelFeatureError, LinuxRenderer, detectKernelFeatures, requireFeatures, runIpBatch } from "../src/index.ts";
import { flannelDataplane } from "./dataplanes.ts";
import { Scratch, checkRequirements, cleanupLeftovers, ipJson, snapshot } from "./lab.ts";

const scratch = new Scratch("f");

beforeAll(async () => {
  checkRequirements();
  await cleanupLeftovers();
});
afterAll(async () => {
  await scratch.cleanup();
});

const KINDS: Record<string, string> = {
  bridge: "link add x type bridge",
  vxlan: "link add x type vxlan id 7 dstport 4789",
  veth: "link add x type veth peer name y",
  dummy: "link add x type dummy",
  ipip: "link add x type ipip",
  gre: "link add x type gre",
  wireguard: "link add x type wireguard",
  vrf: "link add x type vrf table 7",
  sleeve: "tuntap add x mode tap",
};

describe("detectKernelFeatures", () => {
  it("agrees with the kernel for every link kind, gives a reason for every missing feature, and is cached", async () => {
    const f = await detectKernelFeatures();
    expect(await detectKernelFeatures()).toBe(f);
    expect(f.bridge && f.vxlan && f.veth && f.nftables && f.nftNat).toBe(true);
    for (const k of KERNEL_FEATURES) if (!f[k]) expect(f.reasons[k], k).toMatch(/\S/);
    const ns = await scratch.ns("probe");
    for (const [kind, line] of Object.entries(KINDS)) {
      const r = await runIpBatch(ns, [line, "link del x"], { force: true });
      expect(r.failures.length === 0, `${kind}: detected ${f[kind as keyof typeof f]}`).toBe(f[kind as "bridge"]);
    }
  });
});

function ipipDataplane(): NodeDataplane {
  const config = parseCalicoConfig([ipPool("p", { cidr: "10.245.0.0/16", ipipMode: "Always", natOutgoing: true })]);
  return planDataplane({
    config,
    node: { name: "n1", underlay: [{ iface: "eth0", address: "192.168.50.1", prefixLength: 24 }] },
    blocks: ["10.245.1.0/26"],
    learned: [{ prefix: "10.245.2.0/26", nextHop: "192.168.50.2" }],
    peers: [],
    pods: [],
    ipipTunnelAddr: "10.245.1.0",
  });
}

describe("dataplanes the kernel cannot build", () => {
  it("calico IPIP: kernel lacks ipip (named with the link), nothing changed — or, on a kernel with ipip, tunl0 is built", async () => {
    const ns = await scratch.ns("ipip");
    await runIpBatch(ns, ["link add eth0 type veth peer name eth0p", "addr add 192.168.50.1/24 dev eth0", "link set dev eth0 up"]);
    const before = await snapshot(ns);
    const dp = ipipDataplane();
    const renderer = new LinuxRenderer({ netns: ns, owner: "t" });
    const f = await detectKernelFeatures();
    if (!f.ipip) {
      const err = await renderer.apply(dp).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(KernelFeatureError);
      expect(err).toBeInstanceOf(KernelLacksError);
      expect((err as KernelFeatureError).code).toBe(CniCode.KernelLacksFeature);
      expect((err as KernelFeatureError).feature).toBe("ipip");
      expect((err as Error).message).toMatch(/^kernel lacks ipip: cannot create link tunl0 of kind ipip \(.+\)/);
      expect(await snapshot(ns)).toEqual(before);
      await expect(requireFeatures(dp)).rejects.toThrow(/kernel lacks ipip/);
    } else {
      await renderer.apply(dp);
      expect((await ipJson(ns, ["link", "show", "dev", "tunl0"]))[0]?.["ifname"]).toBe("tunl0");
      await renderer.teardown();
    }
  });

  it("weave sleeve is refused without a userspace datapath: the kernel has no device for it", async () => {
    const ns = await scratch.ns("sleeve");
    const before = await snapshot(ns);
    const dp: NodeDataplane = {
      ...emptyDataplane("n1"),
      links: [
        { kind: "bridge", name: "weave" },
        { kind: "sleeve", name: "sleeve0", port: 6783, encrypted: false, master: "weave" },
      ],
    };
    const err = await new LinuxRenderer({ netns: ns }).apply(dp).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(KernelFeatureError);
    expect((err as Error).message).toMatch(/^kernel lacks sleeve: cannot create link sleeve0 of kind sleeve \(.*userspace.*\)/);
    expect(await snapshot(ns)).toEqual(before);
  });

  it("a dummy link is built when the kernel has dummy, refused clearly when not", async () => {
    const ns = await scratch.ns("dummy");
    const dp: NodeDataplane = { ...emptyDataplane("n1"), links: [{ kind: "dummy", name: "node0" }], addresses: [{ dev: "node0", cidr: "10.77.0.1/32" }] };
    const renderer = new LinuxRenderer({ netns: ns });
    if ((await detectKernelFeatures()).dummy) {
      await renderer.apply(dp);
      expect((await ipJson(ns, ["addr", "show", "dev", "node0"]))[0]?.["ifname"]).toBe("node0");
    } else {
      await expect(renderer.apply(dp)).rejects.toThrow(/^kernel lacks dummy: cannot create link node0 of kind dummy/);
      expect((await ipJson(ns, ["link", "show"])).map((l) => l["ifname"])).toEqual(["lo"]);
    }
  });

  it("requireFeatures accepts what this kernel can build (flannel vxlan with NAT, pods)", async () => {
    await expect(requireFeatures(flannelDataplane({ backend: "vxlan", self: 1, nodes: 2, pods: [{ id: 1, netns: "/var/run/netns/x" }] }))).resolves.toBeUndefined();
  });
});
