/**
 * Contract v2 in the lab (root, real etcd): the lab mirrors its nodes as Node objects into etcd,
 * and its fabric port programs the router namespace (routes to a node) and a node's eth0
 * (secondary addresses) — only namespaces the lab created — after the store port validated and
 * recorded the intent.
 */
import { execFileSync } from "node:child_process";
import { afterAll, describe, expect, it } from "vitest";
import { KUBE_PREFIX, MemoryDatastore, MemoryMembership, RealClock, StoreFabricPort, fabricAddressKey, parseKubeNode, silentLogger } from "@cnikit/core";
import { downLab, startLab } from "../src/index.ts";
import { LabFabricPort, plannedNodeInfo } from "../src/build.ts";

const NAME = `f${process.pid}`;

afterAll(async () => {
  await downLab(NAME);
}, 120_000);

const ip = (ns: string, ...args: string[]): string => execFileSync("ip", ["-n", ns, ...args], { encoding: "utf8" });

describe("the lab's fabric port and membership", () => {
  it("mirrors Node objects into etcd; routes go into the router namespace, secondary addresses onto a node's eth0", async () => {
    const lab = await startLab({ name: NAME, backend: "reference", nodes: 2, subnets: 2, daemons: false });
    try {
      const plan = lab.plan;
      const prefix = `/cnikit-lab/${NAME}/`;
      const listed = execFileSync("ip", ["netns", "exec", plan.infra.ns, "etcdctl", `--endpoints=http://127.0.0.1:${plan.etcd.port}`, "get", `${prefix}${KUBE_PREFIX.nodes}`, "--prefix"], { encoding: "utf8" }).trim().split("\n");
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
      // The node answers on it: the other node (across the router) pings it.
      execFileSync("ip", ["netns", "exec", n1!.ns, "ping", "-c", "1", "-W", "2", secondary]);
      // Refused before anything is programmed: outside the node's subnet, or a node the lab does not have.
      await expect(port.addSecondaryAddress({ node: n1!.name, address: secondary })).rejects.toMatchObject({ code: 7, field: "address" });
      await expect(port.setRoute({ dst: "10.77.3.0/24", node: "elsewhere" })).rejects.toMatchObject({ code: 7, field: "node" });
      await port.removeSecondaryAddress({ node: n2!.name, address: secondary });
      expect(ip(n2!.ns, "addr", "show", "dev", "eth0")).not.toContain(`${secondary}/`);
    } finally {
      lab.close();
    }
  }, 180_000);
});
