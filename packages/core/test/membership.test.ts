import { describe, expect, it } from "vitest";
import {
  ConfigError,
  FABRIC_PREFIX,
  FabricTable,
  KUBE_PREFIX,
  MemoryDatastore,
  MemoryMembership,
  StoreFabricPort,
  VirtualClock,
  fabricAddressKey,
  kubeNodeKey,
  kubeNodeValue,
  parseKubeNode,
  scopedMembership,
  silentLogger,
  topologyNeedsOf,
  watchStoreMembership,
  withSecondaryAddresses,
} from "../src/index.ts";
import type { Backend, MembershipEvent, NodeInfo } from "../src/index.ts";

const nodeA: NodeInfo = { name: "a", underlay: [{ iface: "eth0", address: "198.51.100.10", prefixLength: 24, gateway: "198.51.100.1", mtu: 1500 }], labels: { zone: "1" } };
const nodeB: NodeInfo = { name: "b", underlay: [{ iface: "eth0", address: "203.0.113.10", prefixLength: 24, gateway: "203.0.113.1" }] };

function fieldOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    expect((err as { code?: number }).code).toBe(7);
    return (err as ConfigError).field;
  }
  return undefined;
}

describe("MemoryMembership", () => {
  it("lists sorted members at once and delivers joined/updated/left on the clock, not inside the call", async () => {
    const clock = new VirtualClock();
    const m = new MemoryMembership({ clock, nodes: [nodeB] });
    const events: MembershipEvent[] = [];
    m.onChange((e) => events.push(e));
    expect(m.set(nodeA)).toBe(true);
    expect(m.list().map((n) => n.name)).toEqual(["a", "b"]);
    expect(events).toEqual([]);
    await clock.advance(0);
    expect(events.map((e) => `${e.type} ${e.node.name}`)).toEqual(["joined a"]);
    expect(m.set({ ...nodeA, labels: { zone: "1" } })).toBe(false);
    expect(m.set({ ...nodeA, labels: { zone: "2" } })).toBe(true);
    expect(m.remove("b")).toBe(true);
    expect(m.remove("b")).toBe(false);
    await clock.advance(0);
    expect(events.map((e) => `${e.type} ${e.node.name}`)).toEqual(["joined a", "updated a", "left b"]);
    const upd = events[1] as Extract<MembershipEvent, { type: "updated" }>;
    expect(upd.previous.labels).toEqual({ zone: "1" });
    expect(m.get("a")?.labels).toEqual({ zone: "2" });
    expect(m.get("b")).toBeUndefined();
  });

  it("keeps delivering to the other listeners when one throws, and stops after unsubscribe", async () => {
    const clock = new VirtualClock();
    const m = new MemoryMembership({ clock });
    const seen: string[] = [];
    m.onChange(() => {
      throw new Error("listener bug");
    });
    const off = m.onChange((e) => seen.push(e.node.name));
    m.set(nodeA);
    await clock.advance(0);
    off();
    m.set(nodeB);
    await clock.advance(0);
    expect(seen).toEqual(["a"]);
  });

  it("refuses invalid records naming the field", () => {
    const m = new MemoryMembership({ clock: new VirtualClock() });
    expect(fieldOf(() => m.set({ name: "", underlay: nodeA.underlay }))).toBe("name");
    expect(fieldOf(() => m.set({ name: "x", underlay: [] }))).toBe("node(x).underlay");
    expect(fieldOf(() => m.set({ name: "x", underlay: [{ iface: "eth0", address: "nope", prefixLength: 24 }] }))).toBe("node(x).underlay[0].address");
  });

  it("a scope's close() ends every subscription made through it", async () => {
    const clock = new VirtualClock();
    const m = new MemoryMembership({ clock });
    const scope = scopedMembership(m);
    const seen: string[] = [];
    scope.members.onChange((e) => seen.push(e.node.name));
    m.set(nodeA);
    await clock.advance(0);
    scope.close();
    m.set(nodeB);
    scope.members.onChange((e) => seen.push(`late ${e.node.name}`));
    await clock.advance(0);
    expect(seen).toEqual(["a"]);
    expect(scope.members.list().map((n) => n.name)).toEqual(["a", "b"]);
  });
});

describe("kube Node objects", () => {
  it("round-trips a NodeInfo through its key and value", () => {
    const info: NodeInfo = { ...nodeA, annotations: { note: "x" }, podCIDRs: ["10.244.1.0/24"] };
    expect(kubeNodeKey("a")).toBe(`${KUBE_PREFIX.nodes}a`);
    expect(parseKubeNode(kubeNodeKey("a"), kubeNodeValue(info))).toEqual(info);
  });

  it("reads a plain Kubernetes Node (no underlay annotation) from its InternalIP addresses", () => {
    const value = JSON.stringify({
      metadata: { name: "n1", labels: { a: "b" } },
      status: {
        addresses: [
          { type: "Hostname", address: "n1" },
          { type: "InternalIP", address: "10.0.0.5" },
          { type: "InternalIP", address: "fd00::5" },
        ],
      },
    });
    expect(parseKubeNode(kubeNodeKey("n1"), value)).toEqual({
      name: "n1",
      labels: { a: "b" },
      underlay: [
        { iface: "eth0", address: "10.0.0.5", prefixLength: 32 },
        { iface: "eth0", address: "fd00::5", prefixLength: 128 },
      ],
    });
  });

  it.each([
    ["a key outside the prefix", "/x/n1", "{}", "key"],
    ["a value that is not JSON", kubeNodeKey("n1"), "{", "node n1"],
    ["a name that disagrees with the key", kubeNodeKey("n1"), JSON.stringify({ metadata: { name: "n2" }, status: { addresses: [{ type: "InternalIP", address: "10.0.0.5" }] } }), "metadata.name"],
    ["no underlay address", kubeNodeKey("n1"), JSON.stringify({ metadata: {} }), "status.addresses"],
    ["a bad InternalIP", kubeNodeKey("n1"), JSON.stringify({ status: { addresses: [{ type: "InternalIP", address: "10.0.0.500" }] } }), "status.addresses[0].address"],
    ["a label that is not a string", kubeNodeKey("n1"), JSON.stringify({ metadata: { labels: { a: 1 } } }), "metadata.labels.a"],
    [
      "an underlay annotation with an unknown field",
      kubeNodeKey("n1"),
      JSON.stringify({ metadata: { annotations: { "cnikit.io/underlay": JSON.stringify([{ iface: "eth0", address: "10.0.0.5", prefixLength: 24, speed: 1 }]) } } }),
      "metadata.annotations.cnikit.io/underlay[0].speed",
    ],
    [
      "an underlay prefix length out of range",
      kubeNodeKey("n1"),
      JSON.stringify({ metadata: { annotations: { "cnikit.io/underlay": JSON.stringify([{ iface: "eth0", address: "10.0.0.5", prefixLength: 33 }]) } } }),
      "metadata.annotations.cnikit.io/underlay[0].prefixLength",
    ],
  ])("refuses %s naming the field", (_label, key, value, field) => {
    expect(fieldOf(() => parseKubeNode(key, value))).toBe(field);
  });
});

describe("FabricTable", () => {
  const members = new MemoryMembership({ clock: new VirtualClock(), nodes: [nodeA, nodeB] });

  it("validates routes and replaces a route of the same destination", () => {
    const t = new FabricTable(members);
    expect(t.setRoute({ dst: "10.244.1.0/24", node: "a" })).toMatchObject({ changed: true, via: "198.51.100.10" });
    expect(t.setRoute({ dst: "10.244.1.0/24", node: "a" }).changed).toBe(false);
    expect(t.setRoute({ dst: "10.244.1.0/24", node: "b" })).toMatchObject({ changed: true, replaced: { node: "a" } });
    expect(t.routes()).toEqual([{ dst: "10.244.1.0/24", node: "b" }]);
    expect(fieldOf(() => t.setRoute({ dst: "10.244.1.0/33", node: "a" }))).toBe("dst");
    expect(fieldOf(() => t.setRoute({ dst: "10.244.2.0/24", node: "zz" }))).toBe("node");
    expect(fieldOf(() => t.setRoute({ dst: "fd00::/64", node: "a" }))).toBe("node");
  });

  it("gives secondary addresses only inside the node's subnet and never twice", () => {
    const t = new FabricTable(members);
    expect(t.addAddress({ node: "a", address: "198.51.100.50" })).toMatchObject({ changed: true, iface: { iface: "eth0" } });
    expect(fieldOf(() => t.addAddress({ node: "a", address: "203.0.113.50" }))).toBe("address");
    expect(fieldOf(() => t.addAddress({ node: "a", address: "198.51.100.10" }))).toBe("address");
    expect(fieldOf(() => t.addAddress({ node: "b", address: "198.51.100.50" }))).toBe("address");
    expect(t.addressesOf("a")).toEqual(["198.51.100.50"]);
    expect(t.dropNode("a").addresses).toEqual([{ node: "a", address: "198.51.100.50" }]);
    expect(t.addresses()).toEqual([]);
  });

  it("withSecondaryAddresses puts each address on the interface whose subnet holds it", () => {
    const merged = withSecondaryAddresses(nodeA, ["198.51.100.51", "198.51.100.50"]);
    expect(merged.underlay[0]!.secondaryAddresses).toEqual(["198.51.100.50", "198.51.100.51"]);
    expect(withSecondaryAddresses(merged, []).underlay[0]!.secondaryAddresses).toBeUndefined();
    expect(nodeA.underlay[0]!.secondaryAddresses).toBeUndefined();
  });
});

describe("watchStoreMembership + StoreFabricPort", () => {
  it("follows Node objects and the fabric's secondary addresses recorded in the store", async () => {
    const clock = new VirtualClock();
    const store = new MemoryDatastore({ clock });
    await store.put(kubeNodeKey("a"), kubeNodeValue(nodeA));
    await store.put(kubeNodeKey("bad"), "{");
    const abort = new AbortController();
    const errors: (string | undefined)[] = [];
    const members = await watchStoreMembership({ store, clock, signal: abort.signal, onError: (_e, key) => errors.push(key) });
    expect(members.list().map((n) => n.name)).toEqual(["a"]);
    expect(errors).toEqual([kubeNodeKey("bad")]);
    const events: string[] = [];
    members.onChange((e) => events.push(`${e.type} ${e.node.name}`));
    await store.put(kubeNodeKey("b"), kubeNodeValue(nodeB));
    await clock.advance(0);
    expect(members.get("b")?.underlay[0]?.address).toBe("203.0.113.10");

    const port = new StoreFabricPort({ store, members, log: silentLogger });
    await port.addSecondaryAddress({ node: "a", address: "198.51.100.60" });
    await port.setRoute({ dst: "10.244.7.0/24", node: "b" });
    await clock.advance(0);
    expect(members.get("a")?.underlay[0]?.secondaryAddresses).toEqual(["198.51.100.60"]);
    expect(await store.get(fabricAddressKey({ node: "a", address: "198.51.100.60" }))).toBeDefined();
    expect((await store.list(FABRIC_PREFIX.routes)).items.map((kv) => JSON.parse(kv.value))).toEqual([{ dst: "10.244.7.0/24", node: "b" }]);
    expect(await port.routes()).toEqual([{ dst: "10.244.7.0/24", node: "b" }]);
    await expect(port.addSecondaryAddress({ node: "b", address: "198.51.100.60" })).rejects.toMatchObject({ code: 7, field: "address" });

    await port.removeSecondaryAddress({ node: "a", address: "198.51.100.60" });
    await store.delete(kubeNodeKey("b"));
    await clock.advance(0);
    expect(members.get("a")?.underlay[0]?.secondaryAddresses).toBeUndefined();
    expect(members.list().map((n) => n.name)).toEqual(["a"]);
    expect(events).toEqual(["joined b", "updated a", "updated a", "left b"]);
    abort.abort();
  });
});

describe("topologyNeedsOf", () => {
  const base: Omit<Backend<unknown>, "summarize"> = {
    name: "x",
    capabilities: { networkPolicy: false, encryption: false, encapsulations: [], families: [4] },
    parseConfig: (c: unknown) => c,
    createAgent: () => undefined as never,
  };
  const summary = { podRanges: ["10.0.0.0/8"], natOutgoing: false, encapsulations: [], convergenceMs: 1, crashDetectionMs: 1 };

  it("asks topologyNeeds (with the config) when there is one, else needs nothing without asking summarize", () => {
    const seen: unknown[] = [];
    const without: Backend<unknown> = { ...base, summarize: (c) => (seen.push(c), summary) };
    expect(topologyNeedsOf(without, {})).toEqual({ singleSubnet: false });
    expect(seen).toEqual([]);
    const withNeeds: Backend<unknown> = { ...base, summarize: () => summary, topologyNeeds: (c) => ({ singleSubnet: (c as { hostGw: boolean }).hostGw }) };
    expect(topologyNeedsOf(withNeeds, { hostGw: true })).toEqual({ singleSubnet: true });
    expect(topologyNeedsOf(withNeeds, { hostGw: false })).toEqual({ singleSubnet: false });
  });
});
