/**
 * The e2e model on the real kernel: one "node" network namespace and nine pod namespaces, each pod
 * behind a routed veth (/32 address on the pod's eth0, default route via 169.254.1.1, which every
 * node-side veth holds; a /32 route per pod on the node), so traffic between pods is forwarded by
 * the node namespace and crosses its forward hook, where the ruleset is loaded. One long-lived
 * prober per pod namespace (kernel-prober.mjs) serves TCP and UDP 80/81 and runs probes.
 *
 * Namespaces are named `npk<pid>-<suffix>`: unique per run, and leftovers of crashed runs (whose
 * pid is gone) are removed at start. Only addresses inside these namespaces are ever used.
 */
import { execFileSync, spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { POD_IDS } from "./e2e-model.ts";
import { pidAlive } from "@cnikit/core";

const PROBER = fileURLToPath(new URL("./kernel-prober.mjs", import.meta.url));
const PREFIX_RE = /^npk(\d+)-/;

export interface LabPod {
  id: string;
  ip: string;
  hostIf: string;
}

function run(cmd: string, args: string[], input?: string): string {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["pipe", "pipe", "pipe"], ...(input !== undefined ? { input } : {}) });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(" ")} failed: ${e.stderr?.trim() || e.message}`, { cause: err });
  }
}

function which(bin: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${bin}`], { encoding: "utf8" }).status === 0;
}

/**
 * Throws with the Debian package to install when a requirement is missing (root, iproute2,
 * nftables). The kernel test must fail, not skip, without them.
 */
export function checkRequirements(): void {
  if (typeof process.getuid === "function" && process.getuid() !== 0) throw new Error("the kernel test needs root (network namespaces, nft)");
  if (!which("ip")) throw new Error("`ip` not found: install the Debian package iproute2 (apt-get install -y iproute2)");
  if (!which("nft")) throw new Error("`nft` not found: install the Debian package nftables (apt-get install -y nftables)");
}

/** Deletes namespaces of earlier runs (prefix pattern `npk<pid>-`) whose process is gone. Returns their names. */
export function cleanupLeftovers(): string[] {
  const gone: string[] = [];
  for (const line of run("ip", ["netns", "list"]).split("\n")) {
    const name = line.split(" ")[0] ?? "";
    const m = PREFIX_RE.exec(name);
    if (!m || pidAlive(Number(m[1]))) continue;
    spawnSync("ip", ["netns", "delete", name]);
    gone.push(name);
  }
  return gone;
}

/** Whether the kernel can do SCTP, with the reason when not. */
export function sctpSupport(): { supported: boolean; reason: string } {
  const protocols = existsSync("/proc/net/protocols") ? readFileSync("/proc/net/protocols", "utf8") : "";
  if (/^SCTP/m.test(protocols)) return { supported: true, reason: "the kernel has SCTP" };
  const mod = spawnSync("modprobe", ["sctp"], { encoding: "utf8" });
  const again = existsSync("/proc/net/protocols") ? readFileSync("/proc/net/protocols", "utf8") : "";
  if (/^SCTP/m.test(again)) return { supported: true, reason: "the kernel has SCTP (module loaded)" };
  const why = mod.error ? "modprobe is not available" : (mod.stderr || "").trim() || `modprobe sctp exited ${mod.status}`;
  return { supported: false, reason: `this kernel has no SCTP (no SCTP in /proc/net/protocols; ${why})` };
}

export class KernelLab {
  readonly prefix = `npk${process.pid}`;
  readonly node = `${this.prefix}-node`;
  readonly pods: LabPod[];
  private readonly probers = new Map<string, ChildProcessWithoutNullStreams>();
  private readonly waiting = new Map<number, (ok: boolean) => void>();
  private nextId = 1;

  constructor(pods: LabPod[]) {
    this.pods = pods;
  }

  private ns(id: string): string {
    return `${this.prefix}-${id.replace("/", "")}`;
  }

  /** Creates the namespaces, veths, addresses and routes; starts a prober in each pod namespace. */
  async setUp(): Promise<void> {
    run("ip", ["netns", "add", this.node]);
    const sys = (ns: string, key: string, v: string) => run("ip", ["netns", "exec", ns, "sysctl", "-q", "-w", `${key}=${v}`]);
    sys(this.node, "net.ipv4.ip_forward", "1");
    sys(this.node, "net.ipv4.conf.all.rp_filter", "0");
    sys(this.node, "net.ipv4.conf.default.rp_filter", "0");
    run("ip", ["-n", this.node, "link", "set", "lo", "up"]);
    for (const p of this.pods) {
      const ns = this.ns(p.id);
      run("ip", ["netns", "add", ns]);
      run("ip", ["-n", this.node, "link", "add", p.hostIf, "type", "veth", "peer", "name", "eth0", "netns", ns]);
      run("ip", ["-n", this.node, "addr", "add", "169.254.1.1/32", "dev", p.hostIf]);
      run("ip", ["-n", this.node, "link", "set", p.hostIf, "up"]);
      run("ip", ["-n", this.node, "route", "add", `${p.ip}/32`, "dev", p.hostIf]);
      run("ip", ["-n", ns, "link", "set", "lo", "up"]);
      run("ip", ["-n", ns, "addr", "add", `${p.ip}/32`, "dev", "eth0"]);
      run("ip", ["-n", ns, "link", "set", "eth0", "up"]);
      run("ip", ["-n", ns, "route", "add", "169.254.1.1/32", "dev", "eth0", "scope", "link"]);
      run("ip", ["-n", ns, "route", "add", "default", "via", "169.254.1.1", "dev", "eth0"]);
    }
    await Promise.all(this.pods.map((p) => this.startProber(p)));
  }

  private startProber(p: LabPod): Promise<void> {
    const child = spawn("ip", ["netns", "exec", this.ns(p.id), process.execPath, PROBER, "80,81"], { stdio: ["pipe", "pipe", "pipe"] });
    this.probers.set(p.id, child);
    let buf = "";
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += String(d)));
    return new Promise((resolve, reject) => {
      child.once("exit", (code) => reject(new Error(`prober in ${p.id} exited ${code}: ${stderr}`)));
      child.stdout.on("data", (d: Buffer) => {
        buf += String(d);
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line === "ready") resolve();
          else if (line.startsWith("{")) {
            const a = JSON.parse(line) as { id: number; ok: boolean };
            this.waiting.get(a.id)?.(a.ok);
            this.waiting.delete(a.id);
          }
        }
      });
    });
  }

  /** Loads an `nft -f` script into the node namespace (one transaction). */
  nft(script: string): void {
    run("ip", ["netns", "exec", this.node, "nft", "-f", "-"], script);
  }

  /** `nft list table inet cnikit-netpol` in the node namespace. */
  listTable(): string {
    return run("ip", ["netns", "exec", this.node, "nft", "list", "table", "inet", "cnikit-netpol"]);
  }

  private probe(from: string, to: LabPod, proto: "tcp" | "udp", port: number, timeoutMs: number): Promise<boolean> {
    const child = this.probers.get(from)!;
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      child.stdin.write(`${JSON.stringify({ id, proto, host: to.ip, port, timeoutMs })}\n`);
    });
  }

  /**
   * The kernel's 9×9 matrix for one probe, in POD_IDS order: every pair probed concurrently; pairs
   * that fail are probed once more with a longer timeout (a real drop fails both times; a slow
   * machine does not turn an allowed pair into a denied one).
   */
  async matrix(proto: "tcp" | "udp", port: number): Promise<boolean[][]> {
    const byId = new Map(this.pods.map((p) => [p.id, p]));
    const cells = await Promise.all(POD_IDS.flatMap((from) => POD_IDS.map((to) => this.probe(from, byId.get(to)!, proto, port, 700))));
    const again = cells.map((ok, k) => (ok ? Promise.resolve(true) : this.probe(POD_IDS[Math.floor(k / 9)]!, byId.get(POD_IDS[k % 9]!)!, proto, port, 2500)));
    const final = await Promise.all(again);
    return POD_IDS.map((_, i) => final.slice(i * 9, i * 9 + 9));
  }

  /** Stops the probers (by the PIDs this lab started) and deletes the namespaces. */
  tearDown(): void {
    for (const child of this.probers.values()) {
      child.stdin.end();
      if (child.pid !== undefined && child.exitCode === null) {
        try {
          process.kill(child.pid);
        } catch {
          // already gone
        }
      }
    }
    for (const p of this.pods) spawnSync("ip", ["netns", "delete", this.ns(p.id)]);
    spawnSync("ip", ["netns", "delete", this.node]);
  }
}
