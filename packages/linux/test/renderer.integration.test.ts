/**
 * The renderer on the real kernel: the dataplanes flannel (vxlan, host-gw) and calico (no encap,
 * vxlan) plan, rendered into scratch namespaces, read back with `ip -j`; idempotence; removals;
 * foreign objects; drift and restarts; coalescing; pod failures; CHECK; teardown.
 */
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NodeDataplane } from "@cnikit/core";
import { ApplyError, ForeignObjectError, LinuxRenderer, execIn, readSysctls, runIpBatch, runProcess, writeSysctls, type ApplyReport } from "../src/index.ts";
import { helperBuilt } from "../src/channel.ts";
import { calicoDataplane, flannelDataplane, type TestPod } from "./dataplanes.ts";
import { expectKernelHolds } from "./expect-kernel.ts";
import { Scratch, checkRequirements, cleanupLeftovers, ipJson, snapshot } from "./lab.ts";

const scratch = new Scratch("r");
let seq = 0;

beforeAll(async () => {
  checkRequirements();
  await cleanupLeftovers();
});
afterAll(async () => {
  await scratch.cleanup();
});

/** A node namespace with an underlay `eth0` 192.168.50.<i>/24 (peer up, so it has carrier). */
async function node(i: number): Promise<string> {
  const ns = await scratch.ns(`n${++seq}`);
  await runIpBatch(ns, [
    "link add eth0 type veth peer name eth0p",
    "link set dev eth0p up",
    `addr add 192.168.50.${i}/24 dev eth0`,
    "link set dev eth0 up",
    "route add default via 192.168.50.254 dev eth0",
  ]);
  return ns;
}

async function pods(n: number): Promise<TestPod[]> {
  const out: TestPod[] = [];
  for (let id = 1; id <= n; id++) out.push({ id, netns: scratch.path(await scratch.ns(`p${++seq}`)) });
  return out;
}

function changes(r: ApplyReport): string[] {
  return r.commands.map((c) => `${c.tool} ${c.where}: ${c.line.split("\n")[0]}`);
}

describe.each([
  { label: "flannel vxlan", make: (p: TestPod[]) => flannelDataplane({ backend: "vxlan", self: 1, nodes: 3, pods: p }) },
  { label: "flannel host-gw", make: (p: TestPod[]) => flannelDataplane({ backend: "host-gw", self: 1, nodes: 3, pods: p }) },
  { label: "calico no encapsulation", make: (p: TestPod[]) => calicoDataplane({ mode: "none", self: 1, nodes: 3, pods: p }) },
  { label: "calico vxlan", make: (p: TestPod[]) => calicoDataplane({ mode: "vxlan", self: 1, nodes: 3, pods: p }) },
])("$label dataplane from the real planner", ({ make }) => {
  it("the kernel holds exactly it; applying it again issues nothing; a restarted renderer reads it back and issues nothing", async () => {
    const ns = await node(1);
    const dp = make(await pods(2));
    const renderer = new LinuxRenderer({ netns: ns, owner: "t" });
    const first = await renderer.apply(dp);
    expect(first.readKernel).toBe(true);
    expect(first.failedPods).toEqual([]);
    expect(first.pods.map((p) => p.key).sort()).toEqual(dp.pods.map((p) => p.key).sort());
    expect(first.pods.every((p) => p.created)).toBe(true);
    await expectKernelHolds(ns, dp, renderer);
    const second = await renderer.apply(dp);
    expect(second.commands).toEqual([]);
    expect(second.processes).toBe(0);
    expect(second.pods.map((p) => p.created)).toEqual(dp.pods.map(() => false));
    const restarted = new LinuxRenderer({ netns: ns, owner: "t" });
    const third = await restarted.apply(dp);
    expect(third.readKernel).toBe(true);
    expect(changes(third)).toEqual([]);
    expect(third.pods.map((p) => p.hostMac)).toEqual(first.pods.map((p) => p.hostMac));
    await restarted.teardown();
    const left = await ipJson<{ ifname: string }[]>(ns, ["link", "show"]);
    expect(left.map((l) => l.ifname).sort()).toEqual(["eth0", "eth0p", "lo"]);
  });
});

describe("dual-stack", () => {
  it("IPv6 addresses, routes (metric 0 is the kernel's 1024) and pods work and re-apply to nothing", async () => {
    const ns = await node(1);
    const [p] = await pods(1);
    const dp: NodeDataplane = {
      node: "n1",
      links: [{ kind: "bridge", name: "cni0", mtu: 1450 }],
      addresses: [
        { dev: "cni0", cidr: "10.244.1.1/24" },
        { dev: "cni0", cidr: "fd00:244:1::1/64" },
      ],
      routes: [
        { dst: "fd00:244:2::/64", via: "fd00:244:1::99" },
        { dst: "fd00:244:3::/64", type: "blackhole", metric: 20 },
      ],
      neighbours: [{ dev: "cni0", ip: "fd00:244:1::99", mac: "02:00:00:00:00:99", permanent: true }],
      fdb: [],
      sysctls: { ipv4Forwarding: true, ipv6Forwarding: true },
      nat: [{ id: "masq6", kind: "masquerade", sources: ["fd00:244::/48"], exceptDestinations: ["fd00:244::/48"] }],
      filters: [],
      pods: [
        {
          key: "d/eth0",
          containerId: "d",
          ifName: "eth0",
          netns: p!.netns,
          hostIf: "vethd6",
          bridge: "cni0",
          mac: "0a:58:0a:f4:01:02",
          mtu: 1450,
          addresses: ["10.244.1.2/24", "fd00:244:1::2/64"],
          routes: [
            { dst: "0.0.0.0/0", via: "10.244.1.1" },
            { dst: "::/0", via: "fd00:244:1::1" },
          ],
        },
      ],
    };
    const renderer = new LinuxRenderer({ netns: ns, owner: "t" });
    await renderer.apply(dp);
    await expectKernelHolds(ns, dp, renderer);
    expect((await readSysctls(ns, ["net/ipv6/conf/all/forwarding"])).get("net/ipv6/conf/all/forwarding")).toBe("1");
    expect(await execIn(p!.netns, ["ping", "-6", "-c", "1", "-W", "2", "fd00:244:1::1"])).toContain("1 received");
    expect((await renderer.apply(dp)).commands).toEqual([]);
    expect(changes(await new LinuxRenderer({ netns: ns, owner: "t" }).apply(dp))).toEqual([]);
  });
});

describe("reconcile", () => {
  let ns: string;
  let podList: TestPod[];
  let dp: NodeDataplane;
  let renderer: LinuxRenderer;

  beforeAll(async () => {
    ns = await node(1);
    podList = await pods(3);
    dp = flannelDataplane({ backend: "vxlan", self: 1, nodes: 3, pods: podList });
    renderer = new LinuxRenderer({ netns: ns, owner: "t" });
    await renderer.apply(dp);
  });

  it("removing a route from the dataplane deletes only that route", async () => {
    const less = { ...dp, routes: dp.routes.filter((r) => r.dst !== "10.244.3.0/24") };
    const r = await renderer.apply(less);
    expect(changes(r)).toEqual([`ip node: route del 10.244.3.0/24 metric 0 table 254 proto ${renderer.routeProtocol}`]);
    await expectKernelHolds(ns, less, renderer);
    const back = await renderer.apply(dp);
    expect(changes(back)).toEqual([`ip node: route replace 10.244.3.0/24 via 10.244.3.0 dev flannel.1 onlink metric 0 table 254 proto ${renderer.routeProtocol}`]);
  });

  it("removing a pod deletes only its host veth (and the peer goes with it); adding it back is one batch per side", async () => {
    const gone = dp.pods[1]!;
    const less = { ...dp, pods: dp.pods.filter((p) => p !== gone) };
    const r = await renderer.apply(less);
    expect(changes(r)).toEqual([`ip node: link del dev ${gone.hostIf}`]);
    // The node's `ip -batch` channel runs already: no process.
    expect(r.processes).toBe(0);
    await expectKernelHolds(ns, less, renderer);
    expect((await ipJson(gone.netns!, ["link", "show"])).map((l) => l["ifname"])).toEqual(["lo"]);
    const add = await renderer.apply(dp);
    // The pod side: through the running netlink helper when it is built, else one `ip -batch` in the pod's netns.
    expect(add.processes).toBe(helperBuilt() ? 0 : 1);
    expect(new Set(add.commands.map((c) => c.where))).toEqual(new Set(["node", `pod:${gone.key}`]));
    await expectKernelHolds(ns, dp, renderer);
  });

  it("a pod whose netns is already gone is deleted without error", async () => {
    const extra = await pods(1);
    const more = flannelDataplane({ backend: "vxlan", self: 1, nodes: 3, pods: [...podList, { id: 9, netns: extra[0]!.netns }] });
    await renderer.apply(more);
    await execIn(undefined, ["ip", "netns", "delete", extra[0]!.netns.split("/").pop()!]);
    const r = await renderer.apply(dp);
    expect(r.failedPods).toEqual([]);
    await expectKernelHolds(ns, dp, renderer);
  });

  it("objects it does not own survive apply and teardown: a route, a link, an address, a neighbour, an nft table", async () => {
    const own = await node(1);
    await runIpBatch(own, [
      "link add foreign0 type bridge",
      "link set dev foreign0 up",
      "addr add 10.99.0.1/24 dev foreign0",
      "route add 10.98.0.0/16 via 10.99.0.2",
      "route add 10.97.0.0/16 via 10.99.0.3 proto 250",
      "neigh add 10.99.0.5 lladdr 02:00:00:00:99:05 dev foreign0 nud permanent",
    ]);
    await execIn(own, ["nft", "-f", "-"], "table inet someone-else {\n\tchain f {\n\t\ttype filter hook forward priority 10; policy accept;\n\t}\n}\n");
    const before = await snapshot(own);
    const r = new LinuxRenderer({ netns: own, owner: "t", routeProtocol: 249 });
    const fdp = flannelDataplane({ backend: "vxlan", self: 1, nodes: 2, pods: await pods(1) });
    await r.apply(fdp);
    await expectKernelHolds(own, fdp, r);
    expect(await execIn(own, ["ip", "route", "show", "10.98.0.0/16"])).toContain("via 10.99.0.2");
    expect(await execIn(own, ["nft", "list", "tables"])).toContain("someone-else");
    await r.teardown();
    await r.teardown();
    expect(await snapshot(own)).toEqual(before);
  });

  it("a link it must create that exists and is someone else's is refused before anything changes", async () => {
    const own = await node(1);
    await runIpBatch(own, ["link add cni0 type bridge"]);
    const before = await snapshot(own);
    const r = new LinuxRenderer({ netns: own, owner: "t" });
    await expect(r.apply(flannelDataplane({ backend: "host-gw", self: 1, nodes: 2, pods: [] }))).rejects.toThrow(ForeignObjectError);
    expect(await snapshot(own)).toEqual(before);
  });

  it("after a restart, drift is repaired: a deleted route, a changed MTU, a pod missing its address", async () => {
    await runIpBatch(ns, ["route del 10.244.2.0/24", "link set dev cni0 mtu 1300"]);
    await runIpBatch(dp.pods[0]!.netns!, [`addr flush dev eth0`]);
    expect(await renderer.checkPod(dp.pods[0]!)).toContain("address 10.244.1.2/24 is missing on eth0");
    expect((await renderer.apply(dp)).commands).toEqual([]);
    const restarted = new LinuxRenderer({ netns: ns, owner: "t" });
    const r = await restarted.apply(dp);
    const lines = changes(r);
    expect(lines).toContain("ip node: link set dev cni0 mtu 1450");
    expect(lines.some((l) => l.startsWith("ip node: route replace 10.244.2.0/24"))).toBe(true);
    expect(lines).toContain(`ip node: link del dev ${dp.pods[0]!.hostIf}`);
    expect(r.pods.find((p) => p.key === dp.pods[0]!.key)?.created).toBe(true);
    await expectKernelHolds(ns, dp, restarted);
    expect((await restarted.apply(dp)).commands).toEqual([]);
  });

  it("a MAC changed by a chained plugin (tuning) is not drift: no rebuild after a restart; CHECK takes the chain's MAC", async () => {
    const pod = dp.pods[0]!;
    const tuned = "c2:11:22:33:44:55";
    await runIpBatch(pod.netns!, [`link set dev eth0 address ${tuned}`]);
    expect((await renderer.checkPod(pod)).some((p) => p.includes(`has MAC ${tuned}`))).toBe(true);
    expect(await renderer.checkPod(pod, { mac: tuned })).toEqual([]);
    const restarted = new LinuxRenderer({ netns: ns, owner: "t" });
    const r = await restarted.apply(dp);
    expect(changes(r)).not.toContain(`ip node: link del dev ${pod.hostIf}`);
    expect(r.pods.find((p) => p.key === pod.key)?.created).toBe(false);
    expect(JSON.parse(await execIn(pod.netns!, ["ip", "-j", "link", "show", "dev", "eth0"]))[0].address).toBe(tuned);
    await runIpBatch(pod.netns!, [`link set dev eth0 address ${pod.mac}`]);
    expect(await renderer.checkPod(pod)).toEqual([]);
  });

  it("resync() re-reads the kernel and repairs what changed behind the renderer's back", async () => {
    await runIpBatch(ns, [`neigh del 10.244.2.0 dev flannel.1`]);
    const r = await renderer.resync();
    expect(r?.readKernel).toBe(true);
    expect(changes(r!).filter((l) => l.startsWith("ip node: neigh replace 10.244.2.0"))).toHaveLength(1);
    await expectKernelHolds(ns, dp, renderer);
  });

  it("concurrent applies: queued ones are superseded by the latest and share its report", async () => {
    const a = { ...dp, routes: dp.routes.slice(0, 1) };
    const b = { ...dp, routes: [] };
    const p1 = renderer.apply(a);
    const p2 = renderer.apply(b);
    const p3 = renderer.apply(dp);
    const [r1, r2, r3] = await Promise.all([p1, p2, p3]);
    expect(r1.coalesced).toBe(1);
    expect(r2).toBe(r3);
    expect(r3.coalesced).toBe(2);
    await expectKernelHolds(ns, dp, renderer);
  });

  it("a pod that cannot be attached fails alone: reported, rolled back, the rest applied", async () => {
    const bad = flannelDataplane({ backend: "vxlan", self: 1, nodes: 3, pods: [...podList, { id: 20, netns: "/var/run/netns/does-not-exist-ck" }] });
    bad.routes.push({ dst: "10.60.0.0/16", type: "blackhole" });
    const r = await renderer.apply(bad);
    expect(r.failedPods.map((f) => f.key)).toEqual([bad.pods.find((p) => p.netns === "/var/run/netns/does-not-exist-ck")!.key]);
    expect(r.failedPods[0]!.error).toMatch(/does-not-exist-ck/);
    const links = await ipJson(ns, ["link", "show"]);
    expect(links.map((l) => l["ifname"])).not.toContain(r.failedPods[0]!.hostIf);
    expect(await execIn(ns, ["ip", "route", "show", "10.60.0.0/16"])).toContain("blackhole");
    const again = await renderer.apply(dp);
    expect(again.failedPods).toEqual([]);
    await expectKernelHolds(ns, dp, renderer);
  });

  it("a pod whose interface name is taken in its netns fails alone, and its half-made veth is removed", async () => {
    const [p] = await pods(1);
    await runIpBatch(p!.netns, ["link add eth0 type veth peer name other"]);
    const withTaken = flannelDataplane({ backend: "vxlan", self: 1, nodes: 3, pods: [...podList, { id: 30, netns: p!.netns }] });
    const r = await renderer.apply(withTaken);
    const taken = withTaken.pods.find((x) => x.netns === p!.netns)!;
    expect(r.failedPods.map((f) => f.key)).toEqual([taken.key]);
    expect(r.failedPods[0]!.error).toMatch(/File exists/);
    expect((await ipJson(ns, ["link", "show"])).map((l) => l["ifname"])).not.toContain(taken.hostIf);
    await expectKernelHolds(ns, dp, renderer);
    expect((await renderer.apply(dp)).commands).toEqual([]);
  });

  it("a node-level change the kernel refuses throws ApplyError and the next apply re-reads", async () => {
    const bad = { ...dp, routes: [...dp.routes, { dst: "10.61.0.0/16", via: "10.62.0.1" }] };
    await expect(renderer.apply(bad)).rejects.toThrow(ApplyError);
    const r = await renderer.apply(dp);
    expect(r.readKernel).toBe(true);
    await expectKernelHolds(ns, dp, renderer);
  });

  it("checkPod names what is wrong on either side", async () => {
    const p = dp.pods[2]!;
    expect(await renderer.checkPod(p)).toEqual([]);
    await runIpBatch(p.netns!, ["route del default", "link set dev eth0 mtu 1300"]);
    const problems = await renderer.checkPod(p);
    expect(problems).toContain("eth0 has MTU 1300, expected 1450");
    expect(problems).toContain(`route 0.0.0.0/0 via 10.244.1.1 dev eth0 is missing in netns ${p.netns}`);
    await runIpBatch(ns, [`link set dev ${p.hostIf} nomaster`]);
    expect(await renderer.checkPod(p)).toContain(`host interface ${p.hostIf} is not a port of bridge cni0`);
    await runIpBatch(ns, [`link del ${p.hostIf}`]);
    expect(await renderer.checkPod(p)).toEqual([`host interface ${p.hostIf} is missing`]);
    await renderer.resync();
    expect(await renderer.checkPod(p)).toEqual([]);
  });
});

/**
 * A new namespace starts with the host's IPv4 settings (net.core.devconf_inherit_init_net = 0 keeps
 * that inheritance), so what the renderer has to write depends on the host. Inside the namespace the
 * test made — never on the host — it sets what the namespace may have inherited, then the opposite
 * of what the renderer must write, so the writes are seen whatever the host holds.
 */
async function unsetForwarding(ns: string, inherited: string): Promise<void> {
  const keys = ["net/ipv4/ip_forward", "net/ipv4/conf/all/proxy_arp", "net/ipv4/conf/default/proxy_arp"];
  await writeSysctls(
    ns,
    keys.map((key) => ({ key, value: inherited })),
  );
  await writeSysctls(
    ns,
    keys.map((key) => ({ key, value: "0" })),
  );
  expect([...(await readSysctls(ns, keys)).values()]).toEqual(["0", "0", "0"]);
}

describe("rendering into the current namespace (no netns option), as cnikitd on a host does", () => {
  it.each([["0"], ["1"]])("writes sysctls straight to /proc/sys, issues nothing the second time, tears down (namespace inherited ip_forward=%s)", async (inherited) => {
    const ns = await node(1);
    await unsetForwarding(ns, inherited);
    const [p] = await pods(1);
    const tsx = fileURLToPath(new URL("../../../node_modules/.bin/tsx", import.meta.url));
    const child = fileURLToPath(new URL("./current-ns-child.ts", import.meta.url));
    const run = await runProcess(["nsenter", `--net=${scratch.path(ns)}`, "--", tsx, "--conditions=source", child, p!.netns]);
    expect(run.stderr).toBe("");
    const [first, second] = run.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as ApplyReport);
    expect(
      first!.commands
        .filter((c) => c.tool === "sysctl")
        .map((c) => c.line)
        .sort(),
    ).toEqual([`net/ipv4/conf/${first!.pods[0]!.hostIf}/proxy_arp=1`, "net/ipv4/ip_forward=1"]);
    expect(second!.commands).toEqual([]);
    expect(second!.processes).toBe(0);
    const sys = await readSysctls(ns, ["net/ipv4/ip_forward", `net/ipv4/conf/${first!.pods[0]!.hostIf}/proxy_arp`]);
    expect([...sys.values()]).toEqual(["1", "1"]);
    const dp = calicoDataplane({ mode: "none", self: 1, nodes: 2, pods: [p!] });
    await expectKernelHolds(ns, dp, new LinuxRenderer({ netns: ns, owner: "cur" }));
    const down = await runProcess(["nsenter", `--net=${scratch.path(ns)}`, "--", tsx, "--conditions=source", child, p!.netns, "teardown"]);
    expect(down.code).toBe(0);
    expect((await ipJson(ns, ["link", "show"])).map((l) => l["ifname"]).sort()).toEqual(["eth0", "eth0p", "lo"]);
  });
});
