/**
 * Starts and stops a real, single-member etcd for tests, benchmarks and the lab
 * (`@cnikit/etcd/testing`): a free loopback port, a temporary data directory, stop/kill by the PID
 * we started (never by name), restart on the same data directory and ports.
 *
 * The binary comes from the Debian package `etcd-server` (`etcd` on PATH, or `CNIKIT_ETCD_BIN`).
 * When it is missing `EtcdProcess.start` throws, naming the package: tests fail, never skip.
 */

import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants, createWriteStream, mkdtempSync, readFileSync, rmSync, type WriteStream } from "node:fs";
import http from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";

export interface EtcdProcessOptions {
  /** Data directory; default a new temporary one, removed by `cleanup()`. */
  dataDir?: string;
  /** Client port on 127.0.0.1; default a free one. */
  port?: number;
  /** Peer port on 127.0.0.1; default a free one. */
  peerPort?: number;
  /** The etcd binary; default `CNIKIT_ETCD_BIN` or `etcd` on PATH. */
  binary?: string;
  /**
   * etcd's `--max-request-bytes`. Default 2 MiB: etcd's own default (1.5 MiB) counts the whole
   * request, so the contract's largest value (exactly 1.5 MiB) would not fit.
   */
  maxRequestBytes?: number;
  /**
   * Raft heartbeat / election timeout in ms. Defaults 50 / 500 (etcd: 100 / 1000) so leases as
   * short as 1 s are honoured (etcd's minimum TTL is 1.5 election timeouts, rounded up).
   */
  heartbeatMs?: number;
  electionMs?: number;
  /** How long to wait for `/health` to answer. Default 30 000 ms. */
  startTimeoutMs?: number;
  /** More command-line flags. */
  extraArgs?: readonly string[];
}

/** The Debian package that provides the etcd server binary. */
export const ETCD_PACKAGE = "etcd-server";

/**
 * Finds the etcd binary: `CNIKIT_ETCD_BIN`, else `etcd` on PATH (and /usr/bin, /usr/local/bin).
 * Throws an Error naming the Debian package to install when there is none.
 */
export function findEtcdBinary(binary?: string): string {
  const explicit = binary ?? process.env.CNIKIT_ETCD_BIN;
  const candidates = explicit ? [explicit] : [...(process.env.PATH ?? "").split(delimiter).filter(Boolean), "/usr/bin", "/usr/local/bin", "/usr/sbin"].map((d) => join(d, "etcd"));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // try the next one
    }
  }
  throw new Error(
    `etcd is not installed (${explicit ? `${explicit} is not executable` : "no etcd on PATH"}): install the Debian package ${ETCD_PACKAGE} (apt-get install -y ${ETCD_PACKAGE} etcd-client)`,
  );
}

/** A free TCP port on 127.0.0.1 (bound once and released; a later bind may race with others). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function health(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ hostname: "127.0.0.1", port, path: "/health", timeout: 1000, agent: false }, (res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => resolve(res.statusCode === 200 && /"health":\s*"true"/.test(body)));
      res.on("error", () => resolve(false));
    });
    req.on("error", () => resolve(false));
    req.on("timeout", () => req.destroy());
  });
}

function postJson(port: number, path: string, body: unknown): Promise<unknown> {
  const text = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { hostname: "127.0.0.1", port, path, method: "POST", agent: false, timeout: 5000, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(text) } },
      (res) => {
        let out = "";
        res.on("data", (c: Buffer) => (out += c.toString()));
        res.on("end", () => (res.statusCode === 200 ? resolve(JSON.parse(out)) : reject(new Error(`etcd ${path}: HTTP ${res.statusCode} ${out}`))));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error(`etcd ${path}: no answer`)));
    req.end(text);
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One etcd server process we started. */
export class EtcdProcess {
  readonly dataDir: string;
  readonly port: number;
  readonly peerPort: number;
  /** `http://127.0.0.1:<port>`. */
  readonly endpoint: string;
  /** The log file (etcd's stdout and stderr), next to the data directory. */
  readonly logFile: string;
  private readonly binary: string;
  private readonly args: string[];
  private readonly startTimeoutMs: number;
  private readonly baseDir: string;
  private child: ChildProcess | undefined;
  private exited: Promise<void> | undefined;
  private log: WriteStream | undefined;

  private constructor(init: { binary: string; dataDir: string; baseDir: string; port: number; peerPort: number; options: EtcdProcessOptions }) {
    this.binary = init.binary;
    this.dataDir = init.dataDir;
    this.baseDir = init.baseDir;
    this.port = init.port;
    this.peerPort = init.peerPort;
    this.endpoint = `http://127.0.0.1:${init.port}`;
    this.logFile = join(init.baseDir, "etcd.log");
    this.startTimeoutMs = init.options.startTimeoutMs ?? 30_000;
    const peer = `http://127.0.0.1:${init.peerPort}`;
    this.args = [
      "--name",
      "cnikit-test",
      "--data-dir",
      init.dataDir,
      "--listen-client-urls",
      this.endpoint,
      "--advertise-client-urls",
      this.endpoint,
      "--listen-peer-urls",
      peer,
      "--initial-advertise-peer-urls",
      peer,
      "--initial-cluster",
      `cnikit-test=${peer}`,
      "--initial-cluster-state",
      "new",
      "--max-request-bytes",
      String(init.options.maxRequestBytes ?? 2 * 1024 * 1024),
      "--heartbeat-interval",
      String(init.options.heartbeatMs ?? 50),
      "--election-timeout",
      String(init.options.electionMs ?? 500),
      "--logger",
      "zap",
      "--log-outputs",
      "stderr",
      ...(init.options.extraArgs ?? []),
    ];
  }

  /**
   * Starts etcd and waits until `/health` answers. Throws (naming the Debian package) when etcd is
   * not installed, or with the log's tail when it exits or does not become healthy in time.
   * With default ports a start that loses a port race is retried on new ports (3 tries).
   */
  static async start(options: EtcdProcessOptions = {}): Promise<EtcdProcess> {
    const binary = findEtcdBinary(options.binary);
    const baseDir = mkdtempSync(join(tmpdir(), "cnikit-etcd-"));
    const ownsDataDir = options.dataDir === undefined;
    const dataDir = options.dataDir ?? join(baseDir, "data");
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = options.port ?? (await freePort());
      const peerPort = options.peerPort ?? (await freePort());
      const p = new EtcdProcess({ binary, dataDir, baseDir, port, peerPort, options });
      try {
        await p.launch();
        return p;
      } catch (e) {
        lastError = e;
        await p.kill();
        if (options.port !== undefined || !/address already in use/.test(String(e))) break;
        if (ownsDataDir) rmSync(dataDir, { recursive: true, force: true });
      }
    }
    throw lastError;
  }

  /** The PID of the running process, or undefined when stopped. */
  get pid(): number | undefined {
    return this.child?.exitCode === null && this.child.signalCode === null ? this.child.pid : undefined;
  }

  /** Whether the process we started is running. */
  get running(): boolean {
    return this.pid !== undefined;
  }

  private async launch(): Promise<void> {
    if (this.running) return;
    this.log = createWriteStream(this.logFile, { flags: "a" });
    const child = spawn(this.binary, this.args, { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout?.pipe(this.log, { end: false });
    child.stderr?.pipe(this.log, { end: false });
    this.child = child;
    this.exited = new Promise((resolve) => {
      child.once("exit", () => resolve());
      child.once("error", () => resolve());
    });
    const deadline = Date.now() + this.startTimeoutMs;
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`etcd exited while starting (${this.binary}); log tail:\n${this.logTail()}`);
      if (await health(this.port)) return;
      await sleep(50);
    }
    throw new Error(`etcd did not become healthy within ${this.startTimeoutMs} ms on ${this.endpoint}; log tail:\n${this.logTail()}`);
  }

  /** The last `lines` lines of etcd's log. */
  logTail(lines = 20): string {
    try {
      return readFileSync(this.logFile, "utf8")
        .split("\n")
        .slice(-lines - 1)
        .join("\n");
    } catch {
      return "(no log)";
    }
  }

  private async signal(sig: NodeJS.Signals, graceMs: number): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    child.kill(sig);
    const done = await Promise.race([this.exited!.then(() => true), sleep(graceMs).then(() => false)]);
    if (!done) {
      child.kill("SIGKILL");
      await this.exited;
    }
  }

  /** Stops etcd gracefully (SIGTERM to our PID, SIGKILL after 10 s). Idempotent. */
  async stop(): Promise<void> {
    await this.signal("SIGTERM", 10_000);
  }

  /** Kills etcd at once (SIGKILL to our PID): a crash. Idempotent. */
  async kill(): Promise<void> {
    await this.signal("SIGKILL", 10_000);
  }

  /** Starts etcd again on the same data directory and ports (after `stop` or `kill`). */
  async restart(): Promise<void> {
    await this.stop();
    await this.launch();
  }

  /**
   * Revokes every lease etcd holds (deleting their keys), so leases a test left behind cannot
   * expire during the next one. Throws when etcd does not answer.
   */
  async revokeAllLeases(): Promise<number> {
    const { leases } = (await postJson(this.port, "/v3/lease/leases", {})) as { leases?: { ID: string }[] };
    for (const l of leases ?? []) await postJson(this.port, "/v3/lease/revoke", { ID: l.ID }).catch(() => undefined);
    return leases?.length ?? 0;
  }

  /** Stops etcd and removes the temporary directory (with the data, unless a data dir was given). Idempotent. */
  async cleanup(): Promise<void> {
    await this.stop();
    this.log?.end();
    rmSync(this.baseDir, { recursive: true, force: true });
  }
}
