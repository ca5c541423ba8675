/**
 * The client side of the probe agents (`bin/cnikit-lab-probe.mjs`): one agent per namespace,
 * reached over its unix control socket from the lab's own process. Requests are multiplexed on
 * one connection per agent by id.
 */
import { connect, type Socket } from "node:net";
import { fileURLToPath } from "node:url";

/** The agent script. */
export const PROBE_AGENT = fileURLToPath(new URL("../bin/cnikit-lab-probe.mjs", import.meta.url));

/** A probe protocol. */
export type ProbeProto = "tcp" | "udp" | "ping";
/** Every probe protocol, in the matrix's order. */
export const PROBE_PROTOS: readonly ProbeProto[] = ["tcp", "udp", "ping"];

/** The outcome of one probe. */
export interface ProbeResult {
  ok: boolean;
  /** TCP/UDP: the source address the receiver saw. */
  seen?: string;
  error?: string;
  ms?: number;
}

interface Pending {
  resolve: (v: Record<string, unknown>) => void;
  timer: NodeJS.Timeout;
}

/** A connection to one probe agent. */
export class ProbeClient {
  readonly socketPath: string;
  private sock: Socket | undefined;
  private connecting: Promise<Socket> | undefined;
  private pending = new Map<number, Pending>();
  private nextId = 1;
  private buf = "";

  constructor(socketPath: string) {
    this.socketPath = socketPath;
  }

  private open(): Promise<Socket> {
    if (this.sock && !this.sock.destroyed) return Promise.resolve(this.sock);
    this.connecting ??= new Promise<Socket>((resolve, reject) => {
      const s = connect(this.socketPath);
      s.setEncoding("utf8");
      s.once("connect", () => {
        this.sock = s;
        this.connecting = undefined;
        resolve(s);
      });
      s.once("error", (e) => {
        this.connecting = undefined;
        reject(e);
      });
      s.on("data", (d: string) => this.onData(d));
      s.on("close", () => {
        this.sock = undefined;
        for (const [id, p] of this.pending) {
          clearTimeout(p.timer);
          p.resolve({ id, ok: false, error: "probe agent connection closed" });
        }
        this.pending.clear();
      });
    });
    return this.connecting;
  }

  private onData(d: string): void {
    this.buf += d;
    let nl: number;
    while ((nl = this.buf.indexOf("\n")) >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      let v: Record<string, unknown>;
      try {
        v = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      const p = this.pending.get(v["id"] as number);
      if (!p) continue;
      this.pending.delete(v["id"] as number);
      clearTimeout(p.timer);
      p.resolve(v);
    }
  }

  /**
   * Sends one request and resolves with the agent's answer. Never rejects: a dead agent, a socket
   * that cannot be reached or no answer within `timeoutMs + 2000` ms resolve `{ok: false, error}`.
   */
  async request(q: Record<string, unknown> & { timeoutMs?: number }): Promise<Record<string, unknown>> {
    let s: Socket;
    try {
      s = await this.open();
    } catch (e) {
      return { ok: false, error: `probe agent unreachable (${this.socketPath}): ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` };
    }
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(
        () => {
          this.pending.delete(id);
          resolve({ ok: false, error: "probe agent did not answer" });
        },
        (q.timeoutMs ?? 2000) + 2000,
      );
      this.pending.set(id, { resolve, timer });
      s.write(`${JSON.stringify({ ...q, id })}\n`);
    });
  }

  /** Probes `host` with `proto` (TCP/UDP: port `port`, a payload echoed back). */
  async probe(options: { proto: ProbeProto; host: string; port: number; timeoutMs: number; payload?: string }): Promise<ProbeResult> {
    const a = await this.request({
      op: options.proto,
      host: options.host,
      port: options.port,
      timeoutMs: options.timeoutMs,
      payload: options.payload ?? `cnikit-lab ${options.proto} ${Math.random().toString(36).slice(2)}`,
    });
    const out: ProbeResult = { ok: a["ok"] === true };
    if (typeof a["seen"] === "string") out.seen = a["seen"].replace(/^::ffff:/, "");
    if (typeof a["error"] === "string") out.error = a["error"];
    if (typeof a["ms"] === "number") out.ms = a["ms"];
    return out;
  }

  /** Whether the agent answers. */
  async alive(): Promise<boolean> {
    const a = await this.request({ op: "info", timeoutMs: 500 });
    return a["ok"] === true;
  }

  /** Closes the connection (the agent keeps running). Idempotent. */
  close(): void {
    this.sock?.destroy();
    this.sock = undefined;
  }
}
