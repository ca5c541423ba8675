/**
 * A loopback TCP proxy in front of etcd for fault tests: pass traffic, refuse connections (etcd
 * "down"), or lose the next request(s) before or after etcd applied them (an answer lost in
 * flight), deterministically and without touching the etcd process.
 */

import { createServer, connect, type Server, type Socket } from "node:net";

export type ProxyMode = "pass" | "refuse";

export class TcpProxy {
  private server: Server | undefined;
  private readonly pairs = new Set<[Socket, Socket]>();
  private mode: ProxyMode = "pass";
  /** Requests to drop before they reach etcd. */
  private dropRequests = 0;
  /** Answers to cut after etcd got (and applied) the request. */
  private dropAnswers = 0;
  port = 0;

  private constructor(private readonly target: number) {}

  /** Starts listening on a free 127.0.0.1 port, forwarding to `127.0.0.1:target`. */
  static async start(target: number): Promise<TcpProxy> {
    const p = new TcpProxy(target);
    await p.listen(0);
    return p;
  }

  /** `http://127.0.0.1:<port>`. */
  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  private listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const srv = createServer((client) => this.accept(client));
      srv.once("error", reject);
      srv.listen(port, "127.0.0.1", () => {
        const a = srv.address();
        this.port = typeof a === "object" && a ? a.port : port;
        this.server = srv;
        resolve();
      });
    });
  }

  private accept(client: Socket): void {
    if (this.mode === "refuse") {
      client.destroy();
      return;
    }
    const upstream = connect(this.target, "127.0.0.1");
    const pair: [Socket, Socket] = [client, upstream];
    this.pairs.add(pair);
    const cut = (): void => {
      client.destroy();
      upstream.destroy();
      this.pairs.delete(pair);
    };
    client.on("data", (chunk: Buffer) => {
      if (this.dropRequests > 0) {
        this.dropRequests--;
        cut();
        return;
      }
      upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      if (this.dropAnswers > 0) {
        this.dropAnswers--;
        cut();
        return;
      }
      client.write(chunk);
    });
    client.on("error", cut);
    upstream.on("error", cut);
    client.on("close", cut);
    upstream.on("close", cut);
  }

  /** Cuts every open connection now (streams break, pooled connections die). */
  cutAll(): void {
    for (const [a, b] of this.pairs) {
      a.destroy();
      b.destroy();
    }
    this.pairs.clear();
  }

  /** "refuse": stop listening (connections are refused) and cut everything; "pass": listen again. */
  async setMode(mode: ProxyMode): Promise<void> {
    if (mode === this.mode) return;
    this.mode = mode;
    if (mode === "refuse") {
      this.cutAll();
      await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
      this.server = undefined;
      // Give clients in this process a moment to see their pooled connections close, as they
      // would when a real etcd goes away (not in the very same instant as their next request).
      await new Promise((r) => setTimeout(r, 20));
    } else {
      await this.listen(this.port);
    }
  }

  /** The next `n` requests (first data chunk on a connection) are dropped before reaching etcd. */
  dropNextRequests(n: number): void {
    this.dropRequests = n;
  }

  /** The next `n` answers are cut after etcd received (and applied) the request. */
  dropNextAnswers(n: number): void {
    this.dropAnswers = n;
  }

  /** Stops the proxy. */
  async close(): Promise<void> {
    this.cutAll();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    this.server = undefined;
  }
}
