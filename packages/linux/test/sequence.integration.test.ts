/**
 * State-sequence property on the real kernel: random sequences of dataplanes (pods added, removed,
 * rebuilt as another kind; routes, NAT, filters, vxlan coming and going), applied in order by one
 * renderer that is sometimes restarted in between, end in the same kernel state as applying the
 * last dataplane once to a fresh namespace.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NodeDataplane } from "@cnikit/core";
import { LinuxRenderer, deleteNetns, execIn, readSysctls, runIpBatch } from "../src/index.ts";
import { dataplaneArb } from "./gen.ts";
import { Scratch, checkRequirements, cleanupLeftovers, ipJson } from "./lab.ts";

const scratch = new Scratch("s");
const SLOTS = 3;

beforeAll(async () => {
  checkRequirements();
  await cleanupLeftovers();
});
afterAll(async () => {
  await scratch.cleanup();
});

interface Node {
  ns: string;
  pods: string[];
}

async function makeNode(tag: string): Promise<Node> {
  const ns = await scratch.ns(tag);
  await runIpBatch(ns, [
    "link add eth0 address 02:aa:00:00:00:01 type veth peer name eth0p address 02:aa:00:00:00:02",
    "link set dev eth0p up",
    "addr add 192.168.50.1/24 dev eth0",
    "link set dev eth0 up",
  ]);
  const pods: string[] = [];
  for (let i = 0; i < SLOTS; i++) pods.push(await scratch.ns(`${tag}p${i}`));
  return { ns, pods };
}

/** The dataplane with its pods moved to `node`'s pod namespaces. */
function on(dp: NodeDataplane, from: Node, to: Node): NodeDataplane {
  const map = new Map(from.pods.map((p, i) => [scratch.path(p), scratch.path(to.pods[i]!)]));
  return { ...dp, pods: dp.pods.map((p) => ({ ...p, netns: map.get(p.netns!) ?? p.netns! })) };
}

type Json = Record<string, unknown>;
const sortJson = (xs: unknown[]) => xs.map((x) => JSON.stringify(x)).sort();

function linkView(l: Json): Json {
  const info = (l["linkinfo"] ?? {}) as { info_kind?: string; info_data?: Json; info_slave_kind?: string };
  const d = info.info_data ?? {};
  return {
    name: l["ifname"],
    kind: info.info_kind,
    mtu: l["mtu"],
    mac: l["address"],
    master: l["master"],
    alias: l["ifalias"],
    up: ((l["flags"] as string[]) ?? []).includes("UP"),
    vxlan: info.info_kind === "vxlan" ? [d["id"], d["port"], d["local"], d["link"], d["learning"], d["gbp"]] : undefined,
    nf: info.info_kind === "bridge" ? [d["nf_call_iptables"], d["nf_call_ip6tables"]] : undefined,
    addrs: sortJson(((l["addr_info"] as Json[]) ?? []).filter((a) => !isLinkLocal(a["local"])).map((a) => [a["local"], a["prefixlen"], a["scope"]])),
  };
}

/** IPv6 link-local addresses (and their routes) come and go with addrconf timing: not compared. */
function isLinkLocal(x: unknown): boolean {
  return typeof x === "string" && /^fe80:/i.test(x);
}

function keepRoute(r: Json): boolean {
  return !isLinkLocal(r["dst"]) && !(r["type"] === "multicast" && r["dst"] === "ff00::/8");
}

function routeView(r: Json): Json {
  const { flags, ...rest } = r;
  return { ...rest, flags: ((flags as string[]) ?? []).filter((f) => f === "onlink") };
}

/** What a namespace holds, minus what differs between two namespaces built the same way. */
async function view(node: Node): Promise<unknown> {
  const links = await ipJson<Json[]>(node.ns, ["addr", "show"]);
  const routes = await ipJson<Json[]>(node.ns, ["route", "show", "table", "all"]);
  const neigh = await ipJson<Json[]>(node.ns, ["neigh", "show", "nud", "permanent"]);
  const fdb = (JSON.parse(await execIn(node.ns, ["bridge", "-j", "fdb", "show"])) as Json[]).filter((e) => e["dst"] !== undefined);
  const names = links.map((l) => String(l["ifname"]));
  const sysctls = await readSysctls(node.ns, ["net/ipv4/ip_forward", ...names.map((n) => `net/ipv4/conf/${n}/proxy_arp`)]);
  const nft = await execIn(node.ns, ["nft", "list", "ruleset"]);
  const pods = [];
  for (const p of node.pods) {
    const pl = await ipJson<Json[]>(p, ["addr", "show"]);
    const pr = await ipJson<Json[]>(p, ["route", "show", "table", "all"]);
    pods.push({ links: sortJson(pl.map(linkView)), routes: sortJson(pr.filter(keepRoute).map(routeView)) });
  }
  return { links: sortJson(links.map(linkView)), routes: sortJson(routes.filter(keepRoute).map(routeView)), neigh: sortJson(neigh), fdb: sortJson(fdb), sysctls: [...sysctls].sort(), nft, pods };
}

describe("state sequences on the kernel", () => {
  it("any sequence of dataplanes (with restarts) ends where a fresh apply of the last one does", async () => {
    const a = await makeNode("a");
    const gen = { node: "n1", podNetns: a.pods.map((p) => scratch.path(p)), underlayDev: "eth0" };
    let renderer = new LinuxRenderer({ netns: a.ns, owner: "seq" });
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(dataplaneArb(gen), fc.boolean()), { minLength: 1, maxLength: 4 }), async (steps) => {
        for (const [dp, restart] of steps) {
          if (restart) renderer = new LinuxRenderer({ netns: a.ns, owner: "seq" });
          const r = await renderer.apply(dp);
          expect(r.failedPods).toEqual([]);
          expect((await renderer.apply(dp)).commands).toEqual([]);
        }
        const last = steps[steps.length - 1]![0];
        const b = await makeNode(`b${run++}`);
        try {
          await new LinuxRenderer({ netns: b.ns, owner: "seq" }).apply(on(last, a, b));
          expect(await view(a)).toEqual(await view(b));
        } finally {
          for (const n of [b.ns, ...b.pods]) await deleteNetns(n);
        }
      }),
      { numRuns: 25 },
    );
  }, 300_000);
});
