/**
 * Asserts, with `ip -j` / `bridge -j` / `nft list` reads of its own, that a namespace holds exactly
 * the owned objects a dataplane asks for: links (kind, MTU, MAC, master, vxlan parameters, alias),
 * addresses, routes of the renderer's protocol (no more, no less), permanent neighbours, FDB
 * remotes, sysctls, the nft table's NAT rules, and every pod's veth pair (checkPod is empty).
 */
import { expect } from "vitest";
import { Prefix, canonicalAddress, type NodeDataplane } from "@cnikit/core";
import { execIn, readSysctls, type LinuxRenderer } from "../src/index.ts";
import { ipJson } from "./lab.ts";

interface LinkJson {
  ifname: string;
  mtu: number;
  address: string;
  master?: string;
  ifalias?: string;
  flags: string[];
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
  addr_info?: { local: string; prefixlen: number }[];
}

function cidr(text: string): string {
  const [a, len] = text.split("/");
  return `${canonicalAddress(a!)}/${len}`;
}

function routeText(r: { dst: string; gateway?: string; dev?: string; type?: string; table?: string }, family: 4 | 6): string {
  const dst = r.dst === "default" ? (family === 4 ? "0.0.0.0/0" : "::/0") : r.dst.includes("/") ? r.dst : `${r.dst}/${family === 4 ? 32 : 128}`;
  const type = r.type && r.type !== "unicast" ? `${r.type} ` : "";
  const table = r.table === undefined || r.table === "main" ? "" : ` table ${r.table}`;
  return `${type}${Prefix.parse(dst).toString()}${r.gateway ? ` via ${canonicalAddress(r.gateway)}` : ""}${table}`;
}

/** Throws (vitest expectations) unless `ns` holds exactly what `dp` asks for. */
export async function expectKernelHolds(ns: string, dp: NodeDataplane, renderer: LinuxRenderer): Promise<void> {
  const links = await ipJson<LinkJson[]>(ns, ["addr", "show"]);
  const byName = new Map(links.map((l) => [l.ifname, l]));
  const owned = links.filter((l) => l.ifalias === `cnikit:${renderer.owner}` || (l.ifalias ?? "").startsWith(`cnikit:${renderer.owner}:pod:`));
  expect(owned.map((l) => l.ifname).sort()).toEqual([...dp.links.map((l) => l.name), ...dp.pods.map((p) => p.hostIf)].sort());
  for (const l of dp.links) {
    const k = byName.get(l.name)!;
    expect(k.linkinfo?.info_kind, l.name).toBe(l.kind);
    expect(k.ifalias).toBe(`cnikit:${renderer.owner}`);
    expect(k.flags).toContain("UP");
    if (l.mtu !== undefined) expect(k.mtu, `${l.name} mtu`).toBe(l.mtu);
    if (l.mac !== undefined) expect(k.address).toBe(l.mac.toLowerCase());
    expect(k.master).toBe(l.master);
    if (l.kind === "vxlan") {
      const d = k.linkinfo!.info_data!;
      expect({ id: d["id"], port: d["port"], local: d["local"], learning: d["learning"], link: d["link"] }).toEqual({
        id: l.vni,
        port: l.port,
        local: l.local,
        learning: l.learning,
        link: l.underlayDev,
      });
    }
  }
  for (const p of dp.pods) {
    const k = byName.get(p.hostIf)!;
    expect(k.linkinfo?.info_kind).toBe("veth");
    expect(k.master).toBe(p.bridge);
    expect(await renderer.checkPod(p), p.key).toEqual([]);
  }
  for (const a of dp.addresses) {
    const have = (byName.get(a.dev)?.addr_info ?? []).map((x) => `${canonicalAddress(x.local)}/${x.prefixlen}`);
    expect(have, `${a.dev}`).toContain(cidr(a.cidr));
  }
  const proto = String(renderer.routeProtocol);
  const r4 = await ipJson<{ dst: string; gateway?: string; type?: string; table?: string }[]>(ns, ["route", "show", "table", "all", "proto", proto, "root", "0.0.0.0/0"]);
  const r6 = await ipJson<{ dst: string; gateway?: string; type?: string; table?: string }[]>(ns, ["route", "show", "table", "all", "proto", proto, "root", "::/0"]);
  const have = [...r4.map((r) => routeText(r, 4)), ...r6.map((r) => routeText(r, 6))].sort();
  const want = dp.routes
    .map((r) =>
      routeText(
        { dst: r.dst, ...(r.via ? { gateway: r.via } : {}), ...(r.type ? { type: r.type } : {}), ...(r.table !== undefined && r.table !== 254 ? { table: String(r.table) } : {}) },
        r.dst.includes(":") ? 6 : 4,
      ),
    )
    .sort();
  expect(have).toEqual(want);
  const neigh = await ipJson<{ dst: string; dev: string; lladdr: string; protocol?: string }[]>(ns, ["neigh", "show", "nud", "permanent"]);
  expect(
    neigh
      .filter((n) => n.protocol === proto)
      .map((n) => `${n.dev} ${n.dst} ${n.lladdr}`)
      .sort(),
  ).toEqual(dp.neighbours.map((n) => `${n.dev} ${n.ip} ${n.mac.toLowerCase()}`).sort());
  const fdb = JSON.parse(await execIn(ns, ["bridge", "-j", "fdb", "show"])) as { mac: string; ifname?: string; dst?: string }[];
  const vx = new Set(dp.links.filter((l) => l.kind === "vxlan").map((l) => l.name));
  expect(
    fdb
      .filter((e) => e.dst !== undefined && vx.has(e.ifname ?? ""))
      .map((e) => `${e.ifname} ${e.mac} ${e.dst}`)
      .sort(),
  ).toEqual(dp.fdb.map((f) => `${f.dev} ${f.mac.toLowerCase()} ${f.dst}`).sort());
  const keys = new Map<string, string>();
  if (dp.sysctls.ipv4Forwarding !== undefined) keys.set("net/ipv4/ip_forward", dp.sysctls.ipv4Forwarding ? "1" : "0");
  for (const i of dp.sysctls.proxyArp ?? []) keys.set(`net/ipv4/conf/${i}/proxy_arp`, "1");
  const sys = await readSysctls(ns, [...keys.keys()]);
  expect(Object.fromEntries(sys)).toEqual(Object.fromEntries(keys));
  const tables = await execIn(ns, ["nft", "list", "tables"]);
  const mine = `table inet cnikit-${renderer.owner}`;
  if (dp.nat.length === 0 && dp.filters.length === 0) expect(tables).not.toContain(mine);
  else {
    const listing = await execIn(ns, ["nft", "list", "table", "inet", `cnikit-${renderer.owner}`]);
    for (const n of dp.nat) expect(listing).toContain(`comment "${n.id}"`);
  }
}
