/**
 * Reading what the kernel holds: the owned objects of a namespace (one `ip -d -j -batch` for
 * links, addresses, routes and neighbours, one `bridge -j fdb show`, one `nft list table`, then one
 * sysctl read), and the pod side of a veth (for CHECK and for resync).
 */
import { Prefix, canonicalAddress, type Family, type PodInterface, type RouteType } from "@cnikit/core";
import { CommandError, bridgeArgv, execIn, inNetns, ipArgv, runIpBatch, runProcess, type NetnsRef, type SpawnCounter } from "./exec.ts";
import { nftTableName, parseTableHash } from "./nft.ts";
import { emptyState, kernelMetric, linkAlias, proxyArpKey, routeKey, type KernelState, type LinkState, type PodState, type RouteState } from "./state.ts";
import { readSysctls } from "./sysctl.ts";
import { normalizeMac, parseJsonValues } from "./util.ts";

/** What a read found: the owned state plus what it must not touch. */
export interface KernelRead {
  state: KernelState;
  /** Every link name in the namespace (owned or not). */
  allLinks: Set<string>;
  /** `dev cidr` of addresses on links the renderer does not own. */
  foreignAddrs: Set<string>;
}

/** Parameters of a read. */
export interface ReadContext {
  ns: NetnsRef;
  owner: string;
  /** Route / neighbour protocol number that marks ours. */
  proto: number;
  /** Sysctl keys to read besides the proxy_arp switches of owned interfaces. */
  sysctlKeys: readonly string[];
  counter?: SpawnCounter;
}

interface IpAddrInfo {
  family: string;
  local: string;
  prefixlen: number;
  scope?: string;
}

/** One element of `ip -d -j addr show`. */
export interface IpLinkJson {
  ifindex: number;
  ifname: string;
  link_index?: number;
  flags?: string[];
  mtu: number;
  address?: string;
  master?: string;
  ifalias?: string;
  operstate?: string;
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
  addr_info?: IpAddrInfo[];
}

interface IpRouteJson {
  type?: string;
  dst: string;
  gateway?: string;
  dev?: string;
  table?: string;
  prefsrc?: string;
  metric?: number;
  flags?: string[];
  metrics?: { mtu?: number }[];
}

interface IpNeighJson {
  dst: string;
  dev: string;
  lladdr?: string;
  state?: string[];
  protocol?: string | number;
}

interface FdbJson {
  mac: string;
  ifname?: string;
  dev?: string;
  dst?: string;
  vni?: number;
}

function tableNumber(t: string | undefined): number {
  if (t === undefined || t === "main") return 254;
  if (t === "local") return 255;
  if (t === "default") return 253;
  return Number(t);
}

/** Normalizes a route of `ip -d -j route show` (family known from the query). */
export function parseRoute(r: IpRouteJson, family: Family): RouteState {
  const bits = family === 4 ? 32 : 128;
  const dst = r.dst === "default" ? (family === 4 ? "0.0.0.0/0" : "::/0") : r.dst.includes("/") ? Prefix.parse(r.dst).toString() : `${canonicalAddress(r.dst)}/${bits}`;
  const table = tableNumber(r.table);
  const metric = kernelMetric(family, r.metric);
  const type = (r.type ?? "unicast") as RouteType;
  const out: RouteState = { key: routeKey(table, dst, metric), table, family, dst, metric, type, onlink: (r.flags ?? []).includes("onlink") };
  if (r.gateway !== undefined) out.via = canonicalAddress(r.gateway);
  if (r.dev !== undefined && type !== "blackhole" && type !== "unreachable") out.dev = r.dev;
  if (r.prefsrc !== undefined) out.src = canonicalAddress(r.prefsrc);
  const mtu = r.metrics?.find((m) => m.mtu !== undefined)?.mtu;
  if (mtu !== undefined) out.mtu = mtu;
  return out;
}

/** Normalizes an owned link of `ip -d -j addr show`. */
export function parseLink(l: IpLinkJson): LinkState {
  const data = l.linkinfo?.info_data ?? {};
  const link: LinkState = {
    name: l.ifname,
    kind: l.linkinfo?.info_kind ?? "unknown",
    mac: normalizeMac(l.address ?? "") ?? "",
    mtu: l.mtu,
    up: (l.flags ?? []).includes("UP"),
  };
  if (l.master !== undefined) link.master = l.master;
  if (link.kind === "bridge") link.nfCall = data["nf_call_iptables"] === 1;
  if (link.kind === "vxlan") {
    const local = (data["local"] ?? data["local6"]) as string | undefined;
    link.vxlan = {
      vni: Number(data["id"]),
      port: Number(data["port"]),
      local: local === undefined ? "" : canonicalAddress(local),
      learning: data["learning"] === true,
      gbp: data["gbp"] === true,
    };
    if (typeof data["link"] === "string") link.vxlan.dev = data["link"];
  }
  return link;
}

/**
 * Reads the owned objects of a namespace. Owned = links whose alias is `cnikit:<owner>` (and pod
 * veths whose alias is `cnikit:<owner>:pod:<hash>`), every address on them, routes and neighbours
 * with protocol `proto`, FDB entries with a remote (`dst`) on owned vxlan links, our nft table.
 * @throws CommandError / MissingToolError when a read fails (e.g. the namespace does not exist).
 */
export async function readKernel(ctx: ReadContext): Promise<KernelRead> {
  const { ns, owner, proto, counter } = ctx;
  const batch = ["addr show", `route show table all proto ${proto} root 0.0.0.0/0`, `route show table all proto ${proto} root ::/0`, "neigh show nud permanent"];
  const [ipOut, fdbOut, nftOut] = await Promise.all([
    runIpBatch(ns, batch, { globals: ["-d", "-j"], ...(counter ? { counter } : {}) }),
    runProcess(bridgeArgv(ns, ["-j", "fdb", "show"]), undefined, counter),
    runProcess(inNetns(ns, ["nft", "list", "table", "inet", nftTableName(owner)]), undefined, counter),
  ]);
  const values = parseJsonValues(ipOut.stdout);
  if (values.length !== batch.length) {
    throw new CommandError({
      argv: ipArgv(ns, ["-d", "-j", "-batch", "-"]),
      netns: ns,
      stderr: `expected ${batch.length} JSON values from ip, got ${values.length}`,
      exitCode: 0,
      what: "ip -d -j -batch (read)",
    });
  }
  const [links, routes4, routes6, neighs] = values as [IpLinkJson[], IpRouteJson[], IpRouteJson[], IpNeighJson[]];
  const state = emptyState();
  const allLinks = new Set<string>();
  const foreignAddrs = new Set<string>();
  const alias = linkAlias(owner);
  const podPrefix = `${alias}:pod:`;
  const owned = new Set<string>();
  for (const l of links) {
    allLinks.add(l.ifname);
    const a = l.ifalias ?? "";
    let mine = false;
    if (a === alias) {
      state.links.set(l.ifname, parseLink(l));
      mine = true;
    } else if (a.startsWith(podPrefix)) {
      const pod: PodState = { hostIf: l.ifname, hash: a.slice(podPrefix.length), hostMac: normalizeMac(l.address ?? "") ?? "", up: (l.flags ?? []).includes("UP") };
      if (l.master !== undefined) pod.master = l.master;
      state.pods.set(l.ifname, pod);
      mine = true;
    }
    if (mine) owned.add(l.ifname);
    for (const ai of l.addr_info ?? []) {
      const family: Family = ai.family === "inet6" ? 6 : 4;
      const cidr = `${canonicalAddress(ai.local)}/${ai.prefixlen}`;
      const key = `${l.ifname} ${cidr}`;
      if (mine) state.addrs.set(key, { dev: l.ifname, cidr, family });
      else foreignAddrs.add(key);
    }
  }
  for (const r of routes4) {
    const route = parseRoute(r, 4);
    state.routes.set(route.key, route);
  }
  for (const r of routes6) {
    const route = parseRoute(r, 6);
    state.routes.set(route.key, route);
  }
  for (const n of neighs) {
    if (String(n.protocol ?? "") !== String(proto) || n.lladdr === undefined) continue;
    const ip = canonicalAddress(n.dst);
    state.neigh.set(`${n.dev} ${ip}`, { dev: n.dev, ip, mac: normalizeMac(n.lladdr) ?? n.lladdr });
  }
  if (fdbOut.code === 0) {
    for (const v of parseJsonValues(fdbOut.stdout)) {
      for (const e of v as FdbJson[]) {
        const dev = e.ifname ?? e.dev;
        if (dev === undefined || e.dst === undefined || state.links.get(dev)?.kind !== "vxlan") continue;
        const entry = { dev, mac: normalizeMac(e.mac) ?? e.mac, dst: canonicalAddress(e.dst), ...(e.vni !== undefined ? { vni: e.vni } : {}) };
        state.fdb.set(`${dev} ${entry.mac} ${entry.dst} ${entry.vni ?? ""}`, entry);
      }
    }
  } else {
    throw new CommandError({ argv: bridgeArgv(ns, ["-j", "fdb", "show"]), netns: ns, stderr: fdbOut.stderr, exitCode: fdbOut.code });
  }
  if (nftOut.code === 0) state.nft = parseTableHash(nftOut.stdout, owner) ?? "";
  else if (!/No such file or directory/.test(nftOut.stderr)) {
    throw new CommandError({ argv: inNetns(ns, ["nft", "list", "table"]), netns: ns, stderr: nftOut.stderr, exitCode: nftOut.code });
  }
  const keys = new Set(ctx.sysctlKeys);
  for (const name of owned) keys.add(proxyArpKey(name));
  state.sysctls = await readSysctls(ns, [...keys].sort(), counter);
  return { state, allLinks, foreignAddrs };
}

/**
 * Problems with a pod's veth pair as the kernel holds it (empty = as `pod` says): the host side in
 * `ns` (exists, owned by `owner`, on its bridge, up) and the container side in `pod.netns` (exists,
 * is the host side's peer, MAC, MTU, up, every address, every route). Reads only.
 * `attributes` says what MAC and MTU to expect: the pod's own (default), others (a chained plugin
 * such as tuning changed them and said so in the result), or `false` to leave them out — the
 * rebuild check does, since a chained plugin may own them after the ADD.
 */
export async function podProblems(input: {
  ns: NetnsRef;
  owner: string;
  pod: PodInterface;
  counter?: SpawnCounter;
  hostSide?: boolean;
  attributes?: { mac?: string; mtu?: number } | false;
}): Promise<string[]> {
  const { ns, owner, pod, counter } = input;
  const problems: string[] = [];
  let host: IpLinkJson | undefined;
  if (input.hostSide !== false) {
    try {
      const out = await execIn(ns, ["ip", "-d", "-j", "link", "show", "dev", pod.hostIf], undefined, counter);
      host = (JSON.parse(out) as IpLinkJson[])[0];
    } catch {
      problems.push(`host interface ${pod.hostIf} is missing`);
      return problems;
    }
    if (host) {
      if (!(host.ifalias ?? "").startsWith(`${linkAlias(owner)}:pod:`)) problems.push(`host interface ${pod.hostIf} is not owned by ${linkAlias(owner)} (alias ${JSON.stringify(host.ifalias ?? "")})`);
      if (host.linkinfo?.info_kind !== "veth") problems.push(`host interface ${pod.hostIf} is a ${host.linkinfo?.info_kind ?? "unknown"} link, not a veth`);
      if ((pod.bridge ?? undefined) !== host.master)
        problems.push(pod.bridge === undefined ? `host interface ${pod.hostIf} is a port of ${host.master}, expected no bridge` : `host interface ${pod.hostIf} is not a port of bridge ${pod.bridge}`);
      if (!(host.flags ?? []).includes("UP")) problems.push(`host interface ${pod.hostIf} is down`);
    }
  }
  if (pod.netns === undefined) {
    problems.push(`pod ${pod.key} has no netns path`);
    return problems;
  }
  // `table all` makes ip list both families (`table main` alone means IPv4 only); `root` splits them.
  const batch = [`addr show dev ${pod.ifName}`, "route show table all root 0.0.0.0/0", "route show table all root ::/0"];
  const argv = inNetns(pod.netns, ["ip", "-d", "-j", "-batch", "-"]);
  const r = await runProcess(argv, `${batch.join("\n")}\n`, counter);
  if (r.code !== 0) {
    const msg = r.stderr.trim().split("\n")[0] ?? "";
    problems.push(/does not exist|Cannot find device/.test(msg) ? `interface ${pod.ifName} is missing in netns ${pod.netns}` : `netns ${pod.netns}: ${msg}`);
    return problems;
  }
  const [links, routes4, routes6] = parseJsonValues(r.stdout) as [IpLinkJson[], IpRouteJson[], IpRouteJson[]];
  const c = links[0];
  if (!c) {
    problems.push(`interface ${pod.ifName} is missing in netns ${pod.netns}`);
    return problems;
  }
  if (host && (host.link_index !== c.ifindex || c.link_index !== host.ifindex)) problems.push(`${pod.ifName} in netns ${pod.netns} is not the peer of ${pod.hostIf}`);
  if (input.attributes !== false) {
    const mac = normalizeMac(input.attributes?.mac ?? pod.mac);
    const mtu = input.attributes?.mtu ?? pod.mtu;
    if (normalizeMac(c.address ?? "") !== mac) problems.push(`${pod.ifName} has MAC ${c.address}, expected ${mac}`);
    if (c.mtu !== mtu) problems.push(`${pod.ifName} has MTU ${c.mtu}, expected ${mtu}`);
  }
  if (!(c.flags ?? []).includes("UP")) problems.push(`${pod.ifName} is down`);
  const have = new Set((c.addr_info ?? []).map((a) => `${canonicalAddress(a.local)}/${a.prefixlen}`));
  for (const a of pod.addresses) {
    const [ip, len] = a.split("/");
    const want = `${canonicalAddress(ip!)}/${len}`;
    if (!have.has(want)) problems.push(`address ${want} is missing on ${pod.ifName}`);
  }
  const haveRoutes = [...(routes4 ?? []).map((rt) => parseRoute(rt, 4)), ...(routes6 ?? []).map((rt) => parseRoute(rt, 6))].filter((rt) => rt.table === 254);
  for (const rt of pod.routes) {
    const dst = Prefix.parse(rt.dst).toString();
    const ok = haveRoutes.some((h) => h.dst === dst && h.dev === pod.ifName && (rt.via === undefined ? h.via === undefined : h.via === canonicalAddress(rt.via)));
    if (!ok) problems.push(`route ${dst}${rt.via ? ` via ${rt.via}` : ""} dev ${pod.ifName} is missing in netns ${pod.netns}`);
  }
  return problems;
}
