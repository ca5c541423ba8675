// BIRD 2 (Debian bird2) as a peer for tests and benchmarks: writes a config into a temp dir
// (control socket there too), starts `bird -f` — on a loopback address and port of its own
// (`Bird.start` with a `BirdConfig`), or with a whole config of the caller's, optionally inside a
// network namespace (`Bird.launch`) —, queries it with birdc, stops it by its PID.
import { writeFile } from "node:fs/promises";
import net from "node:net";
import { join } from "node:path";
import { Daemon, execFileAsync, removeDir, requireBinary, tempDir, waitFor } from "./daemons.ts";

/** One `protocol bgp` of a BIRD instance. */
export interface BirdPeer {
  /** Protocol name (letters, digits, underscores). */
  name: string;
  address: string;
  port: number;
  asn: number;
  passive?: boolean;
  /** The neighbour is our route-reflection client (`rr client`). */
  rrClient?: boolean;
  holdTime?: number;
  addPaths?: boolean;
  gracefulRestart?: boolean;
  /** BIRD export filter body; default exports the static `announce` routes only. `all` exports everything. */
  exportFilter?: string;
  /** BIRD import filter body; default `all`. */
  importFilter?: string;
  /** `connect delay time` (BIRD default 5; Calico 1; default here 1). */
  connectDelay?: number;
}

/** A BIRD instance. */
export interface BirdConfig {
  routerId: string;
  /** Loopback address BIRD binds (strict bind). */
  address: string;
  port: number;
  asn: number;
  /** Prefixes the static protocol `announce` originates (blackhole routes). */
  routes?: string[];
  /** Prefixes of a static protocol `extra` that starts disabled (`birdc enable extra` announces them). */
  disabledRoutes?: string[];
  /** Networks made resolvable as next hops (static `via "lo"`), so recursive next hops in them are reachable. */
  nextHopNetworks?: string[];
  /** `rr cluster id` for all protocols. */
  rrClusterId?: string;
  peers: BirdPeer[];
}

/** A route as `birdc show route all` prints it. */
export interface BirdRoute {
  prefix: string;
  kind: string;
  protocol: string;
  primary: boolean;
  attrs: Record<string, string>;
}

/** What `Bird.launch` starts. */
export interface BirdLaunch {
  /** The whole bird.conf. */
  configText: string;
  /** A network namespace to run BIRD in (`ip netns exec`, which execs: the PID is BIRD's own). Default: this process's. */
  netns?: string;
  /** Check the config with `bird -p` first (default true). */
  check?: boolean;
  /** Prefix of the temp dir (default `bgp-bird-`). */
  dirPrefix?: string;
}

export class Bird {
  private constructor(
    /** The config it was started from with `start` (undefined for `launch`). */
    readonly config: BirdConfig | undefined,
    readonly dir: string,
    readonly daemon: Daemon,
    private readonly birdcPath: string,
  ) {}

  /** The config text for `cfg`. */
  static configText(cfg: BirdConfig): string {
    const lines = [`router id ${cfg.routerId};`, "protocol device { }"];
    const routes = cfg.routes ?? [];
    lines.push(`protocol static announce {\n  ipv4;\n${routes.map((r) => `  route ${r} blackhole;`).join("\n")}\n}`);
    if (cfg.disabledRoutes?.length) {
      lines.push(`protocol static extra {\n  disabled yes;\n  ipv4;\n${cfg.disabledRoutes.map((r) => `  route ${r} blackhole;`).join("\n")}\n}`);
    }
    if (cfg.nextHopNetworks?.length) {
      lines.push(`protocol static nexthops {\n  ipv4;\n${cfg.nextHopNetworks.map((r) => `  route ${r} via "lo";`).join("\n")}\n}`);
    }
    for (const p of cfg.peers) {
      const hold = p.holdTime ?? 9;
      const exportFilter = p.exportFilter === undefined ? `where proto = "announce" || proto = "extra"` : p.exportFilter === "all" ? "all" : `filter { ${p.exportFilter} }`;
      const importFilter = p.importFilter === undefined ? "all" : `filter { ${p.importFilter} }`;
      lines.push(
        [
          `protocol bgp ${p.name} {`,
          `  local ${cfg.address} port ${cfg.port} as ${cfg.asn};`,
          `  neighbor ${p.address} port ${p.port} as ${p.asn};`,
          "  strict bind on;",
          "  multihop;",
          `  hold time ${hold}; keepalive time ${Math.max(1, Math.floor(hold / 3))};`,
          `  connect delay time ${p.connectDelay ?? 1}; connect retry time 1; error wait time 1, 5;`,
          p.passive ? "  passive on;" : "",
          p.rrClient ? "  rr client;" : "",
          cfg.rrClusterId ? `  rr cluster id ${cfg.rrClusterId};` : "",
          p.gracefulRestart ? "  graceful restart on;" : "",
          `  ipv4 { import ${importFilter}; export ${exportFilter};${p.addPaths ? " add paths on;" : ""} };`,
          "}",
        ]
          .filter(Boolean)
          .join("\n"),
      );
    }
    return `${lines.join("\n")}\n`;
  }

  /**
   * Writes the config, checks it with `bird -p`, starts `bird -f` and waits for its control socket.
   * Throws when bird2 is not installed (naming the package) or BIRD does not come up.
   */
  static start(cfg: BirdConfig, options: { check?: boolean; netns?: string } = {}): Promise<Bird> {
    return Bird.open(cfg, { configText: Bird.configText(cfg), ...options });
  }

  /**
   * Like `start`, with a whole config of the caller's (`configText`), optionally inside a network
   * namespace. Throws when bird2 is not installed (naming the package), the config does not pass
   * `bird -p`, or BIRD does not come up.
   */
  static launch(options: BirdLaunch): Promise<Bird> {
    return Bird.open(undefined, options);
  }

  private static async open(cfg: BirdConfig | undefined, options: BirdLaunch): Promise<Bird> {
    const bird = requireBinary("bird", "bird2");
    const birdc = requireBinary("birdc", "bird2");
    const dir = await tempDir(options.dirPrefix ?? "bgp-bird-");
    const conf = join(dir, "bird.conf");
    await writeFile(conf, options.configText);
    if (options.check !== false) {
      try {
        await execFileAsync(bird, ["-p", "-c", conf]);
      } catch (err) {
        await removeDir(dir);
        throw err;
      }
    }
    const argv = [bird, "-f", "-c", conf, "-s", join(dir, "bird.ctl"), "-P", join(dir, "bird.pid")];
    const daemon =
      options.netns === undefined ? Daemon.spawn("bird", argv[0]!, argv.slice(1), dir) : Daemon.spawn("bird", requireBinary("ip", "iproute2"), ["netns", "exec", options.netns, ...argv], dir);
    const b = new Bird(cfg, dir, daemon, birdc);
    try {
      await waitFor(
        "BIRD's control socket",
        async () => {
          if (daemon.exited !== undefined) throw new Error(`bird exited (${daemon.exited}): ${daemon.output.join("").trim()}`);
          return (await b.birdc("show status")).includes("Daemon is up");
        },
        10_000,
      );
    } catch (err) {
      await b.stop();
      throw err;
    }
    return b;
  }

  /** Replaces the config file with `configText` and has BIRD reload it (`birdc configure`). */
  async reconfigure(configText: string): Promise<void> {
    await writeFile(join(this.dir, "bird.conf"), configText);
    const out = await this.birdc("configure");
    if (!/Reconfigur/i.test(out)) throw new Error(`birdc configure: ${out.trim()}`);
  }

  /** Runs one birdc command and returns its output. */
  async birdc(...args: string[]): Promise<string> {
    const { stdout } = await execFileAsync(this.birdcPath, ["-s", join(this.dir, "bird.ctl"), ...args], { maxBuffer: 256 * 1024 * 1024 });
    return stdout;
  }

  /** The BGP state of a protocol (`Established`, `Active`, `Passive`, ...). */
  async bgpState(protocol: string): Promise<string> {
    const out = await this.birdc("show", "protocols", "all", protocol);
    return /BGP state:\s+(\S+)/.exec(out)?.[1] ?? "unknown";
  }

  /** The `Last error` line of a protocol, if any. */
  async lastError(protocol: string): Promise<string | undefined> {
    const out = await this.birdc("show", "protocols", "all", protocol);
    return /Last error:\s+(.+)/.exec(out)?.[1]?.trim();
  }

  /** Number of routes a protocol imported (`show route protocol X count`). */
  async count(protocol: string): Promise<number> {
    const out = await this.birdc("show", "route", "protocol", protocol, "count");
    return Number(/(\d+) of \d+ routes/.exec(out)?.[1] ?? "NaN");
  }

  /** Every route in the table (optionally of one protocol) with its BGP attributes. */
  async routes(protocol?: string): Promise<BirdRoute[]> {
    const out = await this.birdc("show", "route", "all", ...(protocol ? ["protocol", protocol] : []));
    const routes: BirdRoute[] = [];
    let prefix = "";
    let current: BirdRoute | undefined;
    for (const line of out.split("\n")) {
      const first = /^(\S+\/\d+)\s+(\w+)\s+\[(\w+) [^\]]*\]\s*(\*?)/.exec(line);
      const alt = /^\s+(unicast|unreachable|blackhole|prohibited)\s+\[(\w+) [^\]]*\]\s*(\*?)/.exec(line);
      if (first) {
        prefix = first[1]!;
        current = { prefix, kind: first[2]!, protocol: first[3]!, primary: first[4] === "*", attrs: {} };
        routes.push(current);
      } else if (alt && prefix) {
        current = { prefix, kind: alt[1]!, protocol: alt[2]!, primary: alt[3] === "*", attrs: {} };
        routes.push(current);
      } else if (current) {
        const attr = /^\s+BGP\.(\w+):\s?(.*)$/.exec(line);
        if (attr) current.attrs[attr[1]!] = attr[2]!.trim();
      }
    }
    return routes;
  }

  /** Opens a persistent connection to the control socket (no birdc process per command). */
  control(): Promise<BirdControl> {
    return BirdControl.connect(join(this.dir, "bird.ctl"));
  }

  /** `birdc enable|disable <protocol>`. */
  async setEnabled(protocol: string, enabled: boolean): Promise<void> {
    await this.birdc(enabled ? "enable" : "disable", protocol);
  }

  /** Stops BIRD by its PID (SIGTERM: BIRD says Cease to its peers) and removes the temp dir. Idempotent. */
  async stop(): Promise<void> {
    await this.daemon.stop();
    await removeDir(this.dir);
  }

  /** Kills BIRD by its PID (SIGKILL: no goodbye; the kernel closes its sockets) and removes the temp dir. Idempotent. */
  async kill(): Promise<void> {
    await this.daemon.kill();
    await removeDir(this.dir);
  }
}

/**
 * A client of BIRD's control socket: one connection, one command at a time. Replies are lines
 * `NNNN-text` (more follows), ` text` (continuation) and a final `NNNN text`.
 */
export class BirdControl {
  private buffer = "";
  private waiter: ((reply: string) => void) | undefined;
  private reply: string[] = [];
  private greeted: Promise<void>;

  private constructor(private readonly socket: net.Socket) {
    let greet: () => void = () => undefined;
    this.greeted = new Promise((r) => (greet = r));
    let first = true;
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      this.buffer += chunk;
      for (;;) {
        const nl = this.buffer.indexOf("\n");
        if (nl < 0) break;
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 1);
        this.reply.push(line);
        if (/^\d{4} /.test(line)) {
          const text = this.reply.join("\n");
          this.reply = [];
          if (first) {
            first = false;
            greet();
          } else {
            const w = this.waiter;
            this.waiter = undefined;
            w?.(text);
          }
        }
      }
    });
  }

  static async connect(path: string): Promise<BirdControl> {
    const socket = net.createConnection(path);
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    const c = new BirdControl(socket);
    await c.greeted;
    return c;
  }

  /** Sends one command and resolves to the whole reply. */
  command(line: string): Promise<string> {
    return new Promise((resolve) => {
      this.waiter = resolve;
      this.socket.write(`${line}\n`);
    });
  }

  close(): void {
    this.socket.destroy();
  }
}
