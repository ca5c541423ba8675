/**
 * Shared pieces of the kernel tests: scratch namespaces named `ckl<pid>-<suffix>` (leftovers of
 * crashed runs, whose pid is gone, are removed at start), an L2 "switch" namespace for underlays,
 * TCP and ping probes, and normalized reads of what a namespace holds.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { fileURLToPath } from "node:url";
import { createNetns, deleteNetns, execIn, listNetns, runIpBatch, TOOL_PACKAGES } from "../src/index.ts";
import { pidAlive } from "@cnikit/core";

const PROBE = fileURLToPath(new URL("./tcp-probe.mjs", import.meta.url));
const PREFIX_RE = /^ckl(\d+)-/;

/** Throws with the Debian package to install when a requirement is missing. Never skips. */
export function checkRequirements(): void {
  if (typeof process.getuid === "function" && process.getuid() !== 0) throw new Error("the kernel tests need root (network namespaces, nft)");
  for (const tool of ["ip", "bridge", "nft", "nsenter", "sysctl"]) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) {
      throw new Error(`\`${tool}\` not found: install the Debian package ${TOOL_PACKAGES[tool]} (apt-get install -y ${TOOL_PACKAGES[tool]})`);
    }
  }
  if (spawnSync("sh", ["-c", "command -v ping"]).status !== 0) throw new Error("`ping` not found: install the Debian package iputils-ping");
}

/** Removes namespaces of earlier runs whose process is gone. */
export async function cleanupLeftovers(): Promise<void> {
  for (const name of await listNetns()) {
    const m = PREFIX_RE.exec(name);
    if (m && !pidAlive(Number(m[1]))) await deleteNetns(name);
  }
}

/** Scratch namespaces of one test file; `cleanup()` deletes every one (call it in afterAll). */
export class Scratch {
  readonly prefix: string;
  private readonly names: string[] = [];
  private readonly children: ChildProcessWithoutNullStreams[] = [];

  constructor(tag: string) {
    this.prefix = `ckl${process.pid}-${tag}`;
  }

  /** Creates `<prefix>-<suffix>` (lo up) and returns its name. */
  async ns(suffix: string): Promise<string> {
    const name = `${this.prefix}-${suffix}`;
    this.names.push(name);
    await createNetns(name);
    return name;
  }

  /** Path of a scratch namespace (what CNI_NETNS would hold). */
  path(name: string): string {
    return `/var/run/netns/${name}`;
  }

  /** Stops the servers it started (by PID) and deletes its namespaces. */
  async cleanup(): Promise<void> {
    for (const c of this.children) {
      c.stdin.end();
      if (c.pid !== undefined && c.exitCode === null) {
        try {
          process.kill(c.pid);
        } catch {
          // already gone
        }
      }
    }
    for (const n of this.names.reverse()) await deleteNetns(n);
  }

  /** Starts a TCP server in `ns` on `port` that answers with the peer address it sees. */
  async serve(ns: string, port: number): Promise<void> {
    const child = spawn("nsenter", [`--net=/var/run/netns/${ns}`, "--", process.execPath, PROBE, "serve", String(port)], { stdio: ["pipe", "pipe", "pipe"] });
    this.children.push(child);
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err += String(d)));
    await new Promise<void>((resolve, reject) => {
      child.once("exit", (code) => reject(new Error(`server in ${ns} exited ${code}: ${err}`)));
      child.stdout.on("data", (d: Buffer) => {
        if (String(d).includes("ready")) resolve();
      });
    });
  }
}

/** Connects from `ns` to host:port; resolves with the peer address the server saw, or undefined. */
export function connect(ns: string, host: string, port: number, timeoutMs = 5000): Promise<string | undefined> {
  return new Promise((resolve) => {
    const child = spawn("nsenter", [`--net=/var/run/netns/${ns}`, "--", process.execPath, PROBE, "connect", host, String(port), String(timeoutMs)], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += String(d)));
    child.once("exit", (code) => resolve(code === 0 ? out.trim() : undefined));
  });
}

/** Whether a ping from `ns` to `host` is answered (three tries of two seconds: the machine may be busy). */
export async function ping(ns: string, host: string): Promise<boolean> {
  for (let i = 0; i < 3; i++) {
    try {
      await execIn(ns, ["ping", "-c", "1", "-W", "2", host]);
      return true;
    } catch {
      // not answered (yet): ARP and neighbour resolution can take a moment on a loaded machine
    }
  }
  return false;
}

/** A namespace holding one bridge `sw` that plays an L2 switch for underlays. */
export async function makeSwitch(ns: string): Promise<void> {
  await runIpBatch(ns, ["link add sw type bridge", "link set dev sw up"]);
}

/** Plugs `node` into the switch with interface `iface` holding `cidr` (and a default route via `gateway`). */
export async function plug(input: { sw: string; node: string; iface: string; cidr: string; gateway?: string; port: string }): Promise<void> {
  const { sw, node, iface, cidr, port } = input;
  await runIpBatch(sw, [`link add ${port} type veth peer name ${iface} netns /var/run/netns/${node}`, `link set dev ${port} master sw`, `link set dev ${port} up`]);
  const lines = [`addr add ${cidr} dev ${iface}`, `link set dev ${iface} up`];
  if (input.gateway) lines.push(`route add default via ${input.gateway} dev ${iface}`);
  await runIpBatch(node, lines);
}

/** What a namespace holds, normalized for equality checks (volatile fields removed). */
export async function snapshot(ns: string): Promise<unknown> {
  const [links, routes, neigh, fdb, nft] = await Promise.all([
    execIn(ns, ["ip", "-d", "-j", "addr", "show"]),
    execIn(ns, ["ip", "-d", "-j", "route", "show", "table", "all"]),
    execIn(ns, ["ip", "-j", "neigh", "show", "nud", "permanent"]),
    execIn(ns, ["bridge", "-j", "fdb", "show"]),
    execIn(ns, ["nft", "list", "ruleset"]),
  ]);
  // IPv6 duplicate address detection changes what the kernel shows of a link-local address with
  // time (the "tentative" flag, then the address's local route): state nobody here owns, left out
  // so a snapshot taken before DAD ends equals one taken after it.
  const strip = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(strip);
    if (v && typeof v === "object") {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) {
        if (/timer|_life_time|operstate|flags|ifindex|link_index|^used$|^updated$|^tentative$|^optimistic$|^dadfailed$/.test(k)) continue;
        out[k] = strip(x);
      }
      return out;
    }
    return v;
  };
  const linkLocal = (r: { dst?: unknown }): boolean => typeof r.dst === "string" && /^fe[89ab][0-9a-f]:/i.test(r.dst);
  const routeList = (JSON.parse(routes) as { dst?: unknown }[]).filter((r) => !linkLocal(r));
  return { links: strip(JSON.parse(links)), routes: strip(routeList), neigh: JSON.parse(neigh), fdb: strip(JSON.parse(fdb)), nft };
}

/** `ip -j` of something in a namespace, parsed. */
export async function ipJson<T = Record<string, unknown>[]>(ns: string, args: string[]): Promise<T> {
  return JSON.parse(await execIn(ns, ["ip", "-d", "-j", ...args])) as T;
}
