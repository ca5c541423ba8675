// gobgpd as a test peer: a TOML config in a temp dir, its gRPC API on a loopback port of its own,
// queried and driven with the `gobgp` CLI from the same Debian package, stopped by PID.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Daemon, execFileAsync, removeDir, requireBinary, tempDir, waitFor } from "../../src/testing/daemons.ts";
import { freePort } from "./ports.ts";

/** One neighbour of a gobgpd instance. */
export interface GobgpPeer {
  address: string;
  port: number;
  asn: number;
  passive?: boolean;
  holdTime?: number;
  rrClient?: boolean;
}

export interface GobgpConfig {
  routerId: string;
  address: string;
  port: number;
  asn: number;
  peers: GobgpPeer[];
  clusterId?: string;
}

/** A path as `gobgp ... -j` prints it. */
export interface GobgpPath {
  nlri: { prefix: string };
  attrs: { type: number; value?: number; nexthop?: string; metric?: number; communities?: number[]; as_paths?: { segment_type: number; num: number; asns: number[] }[] }[];
  best?: boolean;
}

export class Gobgp {
  private constructor(
    readonly config: GobgpConfig,
    readonly dir: string,
    readonly daemon: Daemon,
    readonly apiPort: number,
    private readonly cli: string,
  ) {}

  static configText(cfg: GobgpConfig): string {
    const out = ["[global.config]", `  as = ${cfg.asn}`, `  router-id = "${cfg.routerId}"`, `  port = ${cfg.port}`, `  local-address-list = ["${cfg.address}"]`];
    for (const p of cfg.peers) {
      const hold = p.holdTime ?? 9;
      out.push(
        "[[neighbors]]",
        "  [neighbors.config]",
        `    neighbor-address = "${p.address}"`,
        `    peer-as = ${p.asn}`,
        "  [neighbors.transport.config]",
        `    remote-port = ${p.port}`,
        `    local-address = "${cfg.address}"`,
        `    passive-mode = ${p.passive ? "true" : "false"}`,
        "  [neighbors.timers.config]",
        "    connect-retry = 1",
        `    hold-time = ${hold}`,
        `    keepalive-interval = ${Math.max(1, Math.floor(hold / 3))}`,
        "  [neighbors.ebgp-multihop.config]",
        `    enabled = ${p.asn !== cfg.asn ? "true" : "false"}`,
        "    multihop-ttl = 10",
      );
      if (p.rrClient) {
        out.push("  [neighbors.route-reflector.config]", "    route-reflector-client = true", `    route-reflector-cluster-id = "${cfg.clusterId ?? cfg.routerId}"`);
      }
      out.push("  [[neighbors.afi-safis]]", "    [neighbors.afi-safis.config]", '      afi-safi-name = "ipv4-unicast"');
    }
    return `${out.join("\n")}\n`;
  }

  /** Writes the config, starts gobgpd with its API on a free loopback port, waits until the API answers. */
  static async start(cfg: GobgpConfig): Promise<Gobgp> {
    const gobgpd = requireBinary("gobgpd", "gobgpd");
    const cli = requireBinary("gobgp", "gobgpd");
    const dir = await tempDir("bgp-gobgp-");
    const conf = join(dir, "gobgpd.toml");
    await writeFile(conf, Gobgp.configText(cfg));
    const apiPort = await freePort("127.0.0.1");
    const daemon = Daemon.spawn("gobgpd", gobgpd, ["-f", conf, "--api-hosts", `127.0.0.1:${apiPort}`, "--pprof-disable", "-l", "info", "-p"], dir);
    const g = new Gobgp(cfg, dir, daemon, apiPort, cli);
    await waitFor("gobgpd's API", async () => (await g.gobgp("global")).includes("AS"), 10_000, 50);
    // The config file's neighbours are added a moment after the API is up.
    await waitFor("gobgpd's neighbours", async () => cfg.peers.length === 0 || (await g.gobgp("neighbor")).includes(cfg.peers[0]!.address), 10_000, 50);
    return g;
  }

  /** Runs the gobgp CLI against this instance. */
  async gobgp(...args: string[]): Promise<string> {
    const { stdout } = await execFileAsync(this.cli, ["-u", "127.0.0.1", "-p", String(this.apiPort), ...args], { maxBuffer: 512 * 1024 * 1024 });
    return stdout;
  }

  /** gobgp's session state of a neighbour (`established`, `active`, ...), from JSON. */
  async state(neighbor: string): Promise<string> {
    const j = JSON.parse(await this.gobgp("neighbor", neighbor, "-j")) as { state?: { session_state?: number | string } };
    const s = j.state?.session_state;
    const names: Record<number, string> = { 1: "idle", 2: "connect", 3: "active", 4: "opensent", 5: "openconfirm", 6: "established" };
    return typeof s === "number" ? (names[s] ?? String(s)) : String(s ?? "unknown").toLowerCase();
  }

  /** How many messages of `type` (`notification`, `update`, `open`, ...) gobgpd received from a neighbour. */
  async messagesReceived(neighbor: string, type: string): Promise<number> {
    const j = JSON.parse(await this.gobgp("neighbor", neighbor, "-j")) as { state?: { messages?: { received?: Record<string, number> } } };
    return j.state?.messages?.received?.[type] ?? 0;
  }

  /** The global RIB as prefix → paths. */
  async rib(): Promise<Record<string, GobgpPath[]>> {
    return JSON.parse((await this.gobgp("global", "rib", "-j")).trim() || "{}") as Record<string, GobgpPath[]>;
  }

  /** What a neighbour sent us (Adj-RIB-In), prefix → paths. */
  async adjIn(neighbor: string): Promise<Record<string, GobgpPath[]>> {
    return JSON.parse((await this.gobgp("neighbor", neighbor, "adj-in", "-j")).trim() || "{}") as Record<string, GobgpPath[]>;
  }

  /** Number of accepted prefixes from a neighbour. */
  async accepted(neighbor: string): Promise<number> {
    const j = JSON.parse(await this.gobgp("neighbor", neighbor, "-j")) as { afi_safis?: { state?: { accepted?: number } }[] };
    return j.afi_safis?.reduce((n, a) => n + (a.state?.accepted ?? 0), 0) ?? 0;
  }

  /** Adds a route to the global RIB (`gobgp global rib add <prefix> nexthop <nh> ...`). */
  async addRoute(prefix: string, nextHop: string, ...extra: string[]): Promise<void> {
    await this.gobgp("global", "rib", "add", prefix, "nexthop", nextHop, ...extra);
  }

  /** Deletes a route from the global RIB. */
  async deleteRoute(prefix: string): Promise<void> {
    await this.gobgp("global", "rib", "del", prefix);
  }

  /** Stops gobgpd by its PID and removes the temp dir. Idempotent. */
  async stop(): Promise<void> {
    await this.daemon.stop();
    await removeDir(this.dir);
  }
}
