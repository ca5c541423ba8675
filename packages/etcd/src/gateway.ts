/**
 * The transport: etcd's JSON gRPC gateway (`POST /v3/kv/range`, `/v3/kv/txn`, `/v3/watch`, ...)
 * over node's own `http`/`https`, with endpoint fail-over and a bounded retry window.
 *
 * Every failure is classified by what the caller may conclude from it:
 *  - `unreachable`: nothing reached etcd (connection refused, no route, the connect timed out) or
 *    etcd refused before proposing (`too many requests`): nothing was written, retrying is safe.
 *  - `indeterminate`: the request went out but no answer came back (the connection dropped, the
 *    answer timed out, etcd said `leader changed` / `request timed out` / `server stopped`): a
 *    write may or may not have been applied.
 *  - `server`: etcd answered with a definite error (lease not found, compacted, too large, ...).
 *
 * `call` retries `unreachable` failures (and `indeterminate` ones of idempotent calls) on the next
 * endpoint, backing off, until the retry window ends; then it throws `TryAgainError`. A
 * non-idempotent call gets its `indeterminate` failure back to settle it (see `EtcdDatastore`).
 */

import http from "node:http";
import https from "node:https";
import type { Socket } from "node:net";
import { StringDecoder } from "node:string_decoder";
import { ClosedError, ConfigError, TryAgainError } from "@cnikit/core";

/** How a failed exchange leaves a write. */
export type FailureKind = "unreachable" | "indeterminate" | "server";

/** A failed HTTP exchange with etcd's gateway, classified (see the module comment). */
export class ExchangeError extends Error {
  readonly kind: FailureKind;
  readonly endpoint: string;
  /** gRPC status code etcd answered with (server errors). */
  readonly grpcCode: number | undefined;
  /** etcd's own error text (server errors), e.g. `etcdserver: requested lease not found`. */
  readonly etcdError: string | undefined;
  constructor(init: { kind: FailureKind; endpoint: string; message: string; grpcCode?: number; etcdError?: string; cause?: unknown }) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = "ExchangeError";
    this.kind = init.kind;
    this.endpoint = init.endpoint;
    this.grpcCode = init.grpcCode;
    this.etcdError = init.etcdError;
  }
}

/** etcd errors that mean "rejected before it was proposed": nothing was written. */
const NOT_APPLIED = [/etcdserver: too many requests/, /etcdserver: not capable/];
/** etcd errors that mean "maybe applied, maybe not; the cluster is in trouble for now". */
const IN_DOUBT = [
  /etcdserver: request timed out/,
  /etcdserver: leader changed/,
  /etcdserver: no leader/,
  /etcdserver: server stopped/,
  /etcdserver: request cancelled/,
  /transport is closing/,
  /connection (error|closed|refused)/,
  /error reading from server/,
  /the client connection is closing/,
  /SubConns are in TransientFailure/,
  /context canceled/,
  /context deadline exceeded/,
];
/** gRPC codes: CANCELLED, DEADLINE_EXCEEDED, UNAVAILABLE. */
const IN_DOUBT_CODES = new Set([1, 4, 14]);

interface Endpoint {
  url: string;
  mod: typeof http | typeof https;
  hostname: string;
  port: number;
  basePath: string;
  agent: http.Agent;
  streamAgent: http.Agent;
}

export interface GatewayOptions {
  endpoints: readonly string[];
  /** Bound for one exchange (connect + answer). */
  requestTimeoutMs: number;
  /** How long `call` keeps retrying an unreachable etcd before `TryAgainError`. */
  retryWindowMs: number;
  /** Message prefix, e.g. `[etcd-datastore]`. */
  label: string;
}

/** Parses and checks the endpoint list. Throws `ConfigError` naming `endpoints[i]`. */
function parseEndpoints(endpoints: readonly string[]): Endpoint[] {
  if (!Array.isArray(endpoints) || endpoints.length === 0) {
    throw new ConfigError({ field: "endpoints", rule: 'must be a non-empty array of URLs like "http://127.0.0.1:2379"', value: endpoints });
  }
  return endpoints.map((raw, i) => {
    const field = `endpoints[${i}]`;
    if (typeof raw !== "string") throw new ConfigError({ field, rule: "must be a URL string", value: raw });
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      throw new ConfigError({ field, rule: 'must be a URL like "http://127.0.0.1:2379"', value: raw });
    }
    if (u.protocol !== "http:" && u.protocol !== "https:") {
      throw new ConfigError({ field, rule: "must use http: or https: (etcd's client URL)", value: raw });
    }
    if (u.username || u.password || u.search || u.hash) {
      throw new ConfigError({ field, rule: "must not carry credentials, a query or a fragment", value: raw });
    }
    const mod = u.protocol === "https:" ? https : http;
    return {
      url: `${u.protocol}//${u.host}`,
      mod,
      hostname: u.hostname.replace(/^\[(.*)\]$/, "$1"),
      port: u.port === "" ? 2379 : Number(u.port),
      basePath: u.pathname.replace(/\/+$/, ""),
      agent: new mod.Agent({ keepAlive: true, maxSockets: 32 }),
      streamAgent: new mod.Agent({ keepAlive: false }),
    };
  });
}

/** Classifies an error answer from the gateway. */
function serverError(endpoint: string, status: number, body: string): ExchangeError {
  let parsed: { error?: string; message?: string; code?: number } | undefined;
  try {
    parsed = JSON.parse(body) as typeof parsed;
  } catch {
    parsed = undefined;
  }
  const text = parsed?.message ?? parsed?.error ?? body.slice(0, 200);
  const code = parsed?.code;
  let kind: FailureKind = "server";
  if (NOT_APPLIED.some((re) => re.test(text))) kind = "unreachable";
  else if (IN_DOUBT.some((re) => re.test(text)) || (code !== undefined && IN_DOUBT_CODES.has(code)) || status === 502 || status === 503 || status === 504) {
    kind = "indeterminate";
  }
  const init: ConstructorParameters<typeof ExchangeError>[0] = {
    kind,
    endpoint,
    message: parsed
      ? `etcd at ${endpoint} answered HTTP ${status}: ${text}`
      : `${endpoint} answered HTTP ${status} without etcd's JSON error (${text}); is it etcd's client URL with the gRPC gateway enabled?`,
    etcdError: text,
  };
  if (code !== undefined) init.grpcCode = code;
  return new ExchangeError(init);
}

/** A live streaming exchange (a watch). */
export interface StreamHandle {
  /** Ends the exchange; `onEnd` is not called after this. */
  destroy(): void;
  /** Stops reading (etcd then holds back events for this stream). */
  pause(): void;
  resume(): void;
}

export interface StreamHandlers {
  /** One JSON message of the stream. */
  onMessage(message: unknown): void;
  /** The stream ended: `error` is set when it failed (classified), absent when etcd closed it. */
  onEnd(error?: ExchangeError): void;
}

/** The JSON gateway client: unary calls with retries, and raw streams for watches. */
export class Gateway {
  private readonly endpoints: Endpoint[];
  private current = 0;
  private closed = false;
  readonly requestTimeoutMs: number;
  readonly retryWindowMs: number;
  private readonly label: string;
  private readonly streams = new Set<http.ClientRequest>();

  /** Throws `ConfigError` naming `endpoints[i]` for a bad endpoint. */
  constructor(options: GatewayOptions) {
    this.endpoints = parseEndpoints(options.endpoints);
    this.requestTimeoutMs = options.requestTimeoutMs;
    this.retryWindowMs = options.retryWindowMs;
    this.label = options.label;
  }

  /** The endpoint calls currently go to. */
  get endpoint(): string {
    return this.endpoints[this.current]!.url;
  }

  /**
   * POSTs `body` to `path` and returns the parsed answer. Retries (next endpoint, backing off)
   * while nothing reached etcd — and, when `idempotent`, also when the outcome is in doubt — until
   * `deadline` (default: now + retry window), then throws `TryAgainError`. Throws `ExchangeError`
   * for definite etcd errors and for in-doubt non-idempotent calls, `ClosedError` after `close`.
   */
  async call<T>(path: string, body: unknown, options: { idempotent: boolean; deadline?: number }): Promise<T> {
    const deadline = options.deadline ?? Date.now() + this.retryWindowMs;
    const text = JSON.stringify(body);
    let delay = 20;
    let last: ExchangeError | undefined;
    for (let attempt = 1; ; attempt++) {
      if (this.closed) throw new ClosedError(`${this.label} the store is closed; open a new one`);
      const ep = this.endpoints[this.current]!;
      try {
        return (await this.exchange(ep, path, text)) as T;
      } catch (e) {
        if (!(e instanceof ExchangeError)) throw e;
        if (e.kind === "server") throw e;
        if (e.kind === "indeterminate" && !options.idempotent) throw e;
        last = e;
      }
      this.current = (this.current + 1) % this.endpoints.length;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new TryAgainError(
          `${this.label} etcd did not answer (${this.endpoints.map((x) => x.url).join(", ")}; ${attempt} attempt(s) over ${this.retryWindowMs} ms): ${last.message}; nothing was written, retry later`,
          { cause: last },
        );
      }
      if (attempt % this.endpoints.length === 0) {
        await new Promise((r) => setTimeout(r, Math.min(delay, left)));
        delay = Math.min(delay * 2, 500);
      }
    }
  }

  /** One HTTP exchange with one endpoint; failures are `ExchangeError`s. */
  private exchange(ep: Endpoint, path: string, body: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      let connected = false;
      const req = ep.mod.request({
        hostname: ep.hostname,
        port: ep.port,
        path: ep.basePath + path,
        method: "POST",
        agent: ep.agent,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
      });
      req.on("socket", (sock: Socket) => {
        if (req.reusedSocket || !sock.connecting) connected = true;
        else sock.once("connect", () => (connected = true));
      });
      req.setTimeout(this.requestTimeoutMs, () => req.destroy(new Error(`no answer within ${this.requestTimeoutMs} ms`)));
      req.on("error", (err) => {
        reject(
          new ExchangeError({
            kind: connected ? "indeterminate" : "unreachable",
            endpoint: ep.url,
            message: `${ep.url}${path}: ${err.message}${connected ? " (after the request was sent)" : ""}`,
            cause: err,
          }),
        );
      });
      req.on("response", (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          if (res.statusCode !== 200) {
            reject(serverError(ep.url, res.statusCode ?? 0, text));
            return;
          }
          try {
            resolve(JSON.parse(text));
          } catch (err) {
            reject(new ExchangeError({ kind: "indeterminate", endpoint: ep.url, message: `${ep.url}${path}: unreadable answer (${text.slice(0, 100)})`, cause: err }));
          }
        });
        res.on("close", () => {
          if (!res.complete) {
            reject(new ExchangeError({ kind: "indeterminate", endpoint: ep.url, message: `${ep.url}${path}: the answer was cut off` }));
          }
        });
      });
      req.end(body);
    });
  }

  /**
   * Opens a streaming exchange on the current endpoint (watch). Messages arrive newline-delimited;
   * each `{result: ...}` is passed on unwrapped, `{error: ...}` ends the stream with a server error.
   */
  stream(path: string, body: unknown, handlers: StreamHandlers): StreamHandle {
    const ep = this.endpoints[this.current]!;
    const text = JSON.stringify(body);
    let ended = false;
    let destroyed = false;
    let response: http.IncomingMessage | undefined;
    const end = (err?: ExchangeError): void => {
      if (ended || destroyed) return;
      ended = true;
      this.streams.delete(req);
      if (err) this.current = (this.current + 1) % this.endpoints.length;
      handlers.onEnd(err);
    };
    const req = ep.mod.request({
      hostname: ep.hostname,
      port: ep.port,
      path: ep.basePath + path,
      method: "POST",
      agent: ep.streamAgent,
      headers: { "content-type": "application/json", "content-length": Buffer.byteLength(text) },
    });
    this.streams.add(req);
    let connected = false;
    req.on("socket", (sock: Socket) => {
      if (!sock.connecting) connected = true;
      else sock.once("connect", () => (connected = true));
    });
    // Only the connect is bounded: a watch may stay quiet for hours.
    req.setTimeout(this.requestTimeoutMs, () => {
      if (!response) req.destroy(new Error(`no answer within ${this.requestTimeoutMs} ms`));
    });
    req.on("error", (err) => end(new ExchangeError({ kind: connected ? "indeterminate" : "unreachable", endpoint: ep.url, message: `${ep.url}${path}: ${err.message}`, cause: err })));
    req.on("response", (res) => {
      response = res;
      req.setTimeout(0);
      if (res.statusCode !== 200) {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => end(serverError(ep.url, res.statusCode ?? 0, Buffer.concat(chunks).toString("utf8"))));
        res.on("error", () => undefined);
        return;
      }
      const decoder = new StringDecoder("utf8");
      let buffered = "";
      res.on("data", (c: Buffer) => {
        buffered += decoder.write(c);
        let nl: number;
        while ((nl = buffered.indexOf("\n")) >= 0 && !ended && !destroyed) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          if (line.length === 0) continue;
          let msg: { result?: unknown; error?: { message?: string; code?: number } };
          try {
            msg = JSON.parse(line) as typeof msg;
          } catch {
            end(new ExchangeError({ kind: "indeterminate", endpoint: ep.url, message: `${ep.url}${path}: unreadable stream message` }));
            req.destroy();
            return;
          }
          if (msg.error) {
            end(serverError(ep.url, 200, JSON.stringify(msg.error)));
            req.destroy();
            return;
          }
          handlers.onMessage(msg.result ?? {});
        }
      });
      res.on("end", () => end());
      res.on("close", () => {
        if (!res.complete) end(new ExchangeError({ kind: "indeterminate", endpoint: ep.url, message: `${ep.url}${path}: the stream was cut off` }));
      });
      res.on("error", () => undefined);
    });
    req.end(text);
    return {
      destroy: () => {
        if (destroyed) return;
        destroyed = true;
        this.streams.delete(req);
        req.destroy();
      },
      pause: () => response?.pause(),
      resume: () => response?.resume(),
    };
  }

  /** Ends every stream and drops pooled connections; later calls throw `ClosedError`. Idempotent. */
  close(): void {
    this.closed = true;
    for (const req of this.streams) req.destroy();
    this.streams.clear();
    for (const ep of this.endpoints) {
      ep.agent.destroy();
      ep.streamAgent.destroy();
    }
  }
}
