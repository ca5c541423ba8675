/**
 * Contract v2 in the lab (root, real etcd): the lab mirrors its nodes as Node objects into etcd,
 * and its fabric port programs the router namespace (routes to a node) and a node's eth0
 * (secondary addresses) — only namespaces the lab created — after the store port validated and
 * recorded the intent.
 */
import { execFileSync } from "node:child_process";
import { afterAll, describe, expect, it } from "vitest";
import { KUBE_PREFIX, MemoryDatastore, MemoryMembership, RealClock, StoreFabricPort, fabricAddressKey, parseKubeNode, silentLogger } from "@cnikit/core";
import { writeSysctls } from "@cnikit/linux";
import { downLab, nsPrefix, startLab } from "../src/index.ts";
import { LabFabricPort, labSecondaryAddresses, plannedNodeInfo } from "../src/build.ts";

const NAME = `f${process.pid}`;
const POD_LAB = `f${process.pid}p`;

afterAll(async () => {
  await downLab(NAME);
  await downLab(POD_LAB);
}, 120_000);

const ip = (ns: string, ...args: string[]): string => execFileSync("ip", ["-n", ns, ...args], { encoding: "utf8" });
const inNs = (ns: string, ...argv: string[]): string => execFileSync("ip", ["netns", "exec", ns, ...argv], { encoding: "utf8" });
/** The TTL of the echo reply `from` gets from `address` (one ping, 3 s). */
const replyTtl = (from: string, address: string): number => Number(/ttl=(\d+)/.exec(inNs(from, "ping", "-c", "1", "-W", "3", address))?.[1]);
/** Echo requests a namespace has received (`Icmp: InEchos`). */
const inEchos = (ns: string): number => {
  const lines = inNs(ns, "cat", "/proc/net/snmp")
    .split("\n")
    .filter((l) => l.startsWith("Icmp:"));
  const names = lines[0]!.split(/\s+/);
  return Number(lines[1]!.split(/\s+/)[names.indexOf("InEchos")]);
};

describe("the lab's fabric port and membership", () => {
  it("mirrors Node objects into etcd; routes go into the router namespace, secondary addresses onto a node's eth0", async () => {
    const lab = await startLab({ name: NAME, backend: "reference", nodes: 2, subnets: 2, daemons: false });
    try {
      const plan = lab.plan;
      const prefix = `/cnikit-lab/${NAME}/`;
      const listed = execFileSync("ip", ["netns", "exec", plan.infra.ns, "etcdctl", `--endpoints=http://127.0.0.1:${plan.etcd.port}`, "get", `${prefix}${KUBE_PREFIX.nodes}`, "--prefix"], {
        encoding: "utf8",
      })
        .trim()
        .split("\n");
      const nodes = [];
      for (let i = 0; i + 1 < listed.length; i += 2) nodes.push(parseKubeNode(listed[i]!.slice(prefix.length), listed[i + 1]!));
      expect(nodes).toEqual(plan.nodes.map((n) => plannedNodeInfo(n)));

      const clock = new RealClock();
      const store = new MemoryDatastore({ clock });
      const members = new MemoryMembership({ clock, nodes });
      const port = new LabFabricPort(plan, new StoreFabricPort({ store, members, log: silentLogger }));
      const [n1, n2] = plan.nodes;
      const router = plan.routers[0]!;
      await port.setRoute({ dst: "10.77.2.0/24", node: n2!.name });
      expect(ip(router.ns, "route", "show", "10.77.2.0/24")).toMatch(new RegExp(`via ${n2!.address.replace(/\./g, "\\.")}`));
      await port.setRoute({ dst: "10.77.2.0/24", node: n1!.name });
      expect(ip(router.ns, "route", "show", "10.77.2.0/24")).toMatch(new RegExp(`via ${n1!.address.replace(/\./g, "\\.")}`));
      await port.deleteRoute("10.77.2.0/24");
      await port.deleteRoute("10.77.2.0/24");
      expect(ip(router.ns, "route", "show", "10.77.2.0/24").trim()).toBe("");

      const secondary = n2!.address.replace(/\.\d+$/, ".200");
      await port.addSecondaryAddress({ node: n2!.name, address: secondary });
      expect(ip(n2!.ns, "addr", "show", "dev", "eth0")).toContain(`${secondary}/`);
      expect(await store.get(fabricAddressKey({ node: n2!.name, address: secondary }))).toBeDefined();
      // Read back from the kernel as the fabric's (the suite's ipam.reserved does not count it as the node's own); the node's primary is not.
      expect([...(await labSecondaryAddresses(n2!.ns))]).toEqual([secondary]);
      // The node answers on it: the other node (across the router) pings it.
      execFileSync("ip", ["netns", "exec", n1!.ns, "ping", "-c", "1", "-W", "2", secondary]);
      // Refused before anything is programmed: outside the node's subnet, or a node the lab does not have.
      await expect(port.addSecondaryAddress({ node: n1!.name, address: secondary })).rejects.toMatchObject({ code: 7, field: "address" });
      await expect(port.setRoute({ dst: "10.77.3.0/24", node: "elsewhere" })).rejects.toMatchObject({ code: 7, field: "node" });
      await port.removeSecondaryAddress({ node: n2!.name, address: secondary });
      expect(ip(n2!.ns, "addr", "show", "dev", "eth0")).not.toContain(`${secondary}/`);
      expect([...(await labSecondaryAddresses(n2!.ns))]).toEqual([]);
    } finally {
      lab.close();
    }
  }, 180_000);

  it("a secondary address that a pod on the node holds (host route + proxy ARP) is routed to the pod; without the host route the node takes it", async () => {
    const lab = await startLab({ name: POD_LAB, backend: "reference", nodes: 3, subnets: 2, daemons: false });
    try {
      const plan = lab.plan;
      const clock = new RealClock();
      const port = new LabFabricPort(
        plan,
        new StoreFabricPort({ store: new MemoryDatastore({ clock }), members: new MemoryMembership({ clock, nodes: plan.nodes.map((n) => plannedNodeInfo(n)) }), log: silentLogger }),
      );
      const n2 = plan.nodes.find((n) => plan.nodes.some((m) => m !== n && m.subnet === n.subnet))!;
      const near = plan.nodes.find((n) => n !== n2 && n.subnet === n2.subnet)!; // same subnet: ARP straight for the address
      const far = plan.nodes.find((n) => n.subnet !== n2.subnet)!; // across the router
      const router = plan.routers[0]!; // on n2's subnet: ARP for the address too
      expect(near && far && router).toBeTruthy();
      const secondary = n2.address.replace(/\.\d+$/, ".200");
      await port.addSecondaryAddress({ node: n2.name, address: secondary });
      await port.addSecondaryAddress({ node: n2.name, address: secondary }); // idempotent
      const rules = ip(n2.ns, "rule", "show");
      expect(rules.split("\n").filter((l) => l.includes(`to ${secondary} lookup main suppress_prefixlength 31`))).toEqual([`50:\tfrom all to ${secondary} lookup main suppress_prefixlength 31`]);
      expect(rules).toContain("100:\tfrom all lookup local");
      expect(rules).not.toMatch(/^0:\s+from all lookup local/m);
      expect(ip(n2.ns, "neigh", "show", "proxy")).toContain(`${secondary} dev eth0 proxy`);
      // Unchanged: with no host route the node itself answers (its default TTL 64).
      expect(replyTtl(near.ns, secondary)).toBe(64);
      expect(replyTtl(far.ns, secondary)).toBe(63);
      expect(replyTtl(router.ns, secondary)).toBe(64);

      // A routed pod on n2 holding the address (Azure CNI transparent mode / Calico-style): /32,
      // default via 169.254.1.1 onlink, proxy ARP on the host veth and on eth0, strict rp_filter on
      // the host veth, a host route to it. The pod's default TTL is 77, so its replies are told apart.
      const podNs = `${nsPrefix(POD_LAB)}-az1`;
      execFileSync("ip", ["netns", "add", podNs]);
      ip(n2.ns, "link", "add", "azv1", "type", "veth", "peer", "name", "eth0", "netns", podNs);
      ip(podNs, "addr", "add", `${secondary}/32`, "dev", "eth0");
      ip(podNs, "link", "set", "lo", "up");
      ip(podNs, "link", "set", "eth0", "up");
      ip(podNs, "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link");
      ip(podNs, "route", "add", "default", "via", "169.254.1.1", "dev", "eth0", "onlink");
      await writeSysctls(podNs, [{ key: "net.ipv4.ip_default_ttl", value: "77" }]);
      ip(n2.ns, "link", "set", "azv1", "up");
      await writeSysctls(n2.ns, [
        { key: "net.ipv4.ip_forward", value: "1" },
        { key: "net.ipv4.conf.azv1.proxy_arp", value: "1" },
        { key: "net.ipv4.conf.eth0.proxy_arp", value: "1" },
        { key: "net.ipv4.conf.azv1.rp_filter", value: "1" },
      ]);
      ip(n2.ns, "route", "add", `${secondary}/32`, "dev", "azv1");
      for (const ns of [near.ns, router.ns]) ip(ns, "neigh", "flush", "all"); // ARP asked afresh

      const before = inEchos(podNs);
      expect(replyTtl(near.ns, secondary)).toBe(76); // 77 − n2
      expect(replyTtl(far.ns, secondary)).toBe(75); // 77 − n2 − router
      expect(replyTtl(router.ns, secondary)).toBe(76);
      expect(replyTtl(n2.ns, secondary)).toBe(77); // the node itself: its host route
      expect(inEchos(podNs) - before).toBe(4);
      // The pod's own packets (source = the secondary address) leave through n2's eth0, past strict
      // rp_filter on the host veth: the replies come back (64 − the hops).
      expect(replyTtl(podNs, near.address)).toBe(63);
      expect(replyTtl(podNs, far.address)).toBe(62);
      expect(replyTtl(podNs, router.interfaces.find((i) => i.subnet === n2.subnet)!.address)).toBe(63);

      // ARP for the address with the host route winning: answered by proxy. Without proxy_arp on
      // eth0 the fabric port's proxy neighbour entry still answers.
      await writeSysctls(n2.ns, [{ key: "net.ipv4.conf.eth0.proxy_arp", value: "0" }]);
      ip(near.ns, "neigh", "flush", "all");
      expect(replyTtl(near.ns, secondary)).toBe(76);
      expect(ip(near.ns, "neigh", "show", secondary)).toMatch(new RegExp(`lladdr ${ip(n2.ns, "-j", "link", "show", "eth0").match(/"address":"([0-9a-f:]+)"/)![1]}`));

      // The host route goes (the pod deleted): the address is the node's own again.
      ip(n2.ns, "route", "del", `${secondary}/32`, "dev", "azv1");
      const quiet = inEchos(podNs);
      expect(replyTtl(near.ns, secondary)).toBe(64);
      expect(replyTtl(router.ns, secondary)).toBe(64);
      expect(inEchos(podNs)).toBe(quiet);

      // Taking the address back removes it, its rule and its proxy entry (the local lookup stays at 100).
      await port.removeSecondaryAddress({ node: n2.name, address: secondary });
      await port.removeSecondaryAddress({ node: n2.name, address: secondary });
      expect(ip(n2.ns, "addr", "show", "dev", "eth0")).not.toContain(`${secondary}/`);
      expect(ip(n2.ns, "rule", "show")).not.toContain(secondary);
      expect(ip(n2.ns, "rule", "show")).toContain("100:\tfrom all lookup local");
      expect(ip(n2.ns, "neigh", "show", "proxy")).not.toContain(secondary);
    } finally {
      lab.close();
    }
    const down = await downLab(POD_LAB);
    expect(down.leftovers).toEqual([]);
    expect(down.namespaces).toContain(`${nsPrefix(POD_LAB)}-az1`);
  }, 240_000);
});
