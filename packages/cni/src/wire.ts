/**
 * The socket protocol between the `cnikit-cni` executable (a thin shim: bin/cnikit-cni in plain
 * JS, or its C twin) and `cnikitd`. One request per unix-socket connection; both sides are simple
 * enough to write in C without a JSON parser:
 *
 * Request (shim → daemon), then the shim half-closes (shutdown(SHUT_WR)):
 *
 *     "CNIKIT/1\0"  ("KEY=VALUE\0")*  "\0"  <stdin bytes until EOF>
 *
 * The environment entries are the plugin's CNI_* variables exactly as given (no value can hold a
 * NUL). When the shim could not read its stdin it sends `CNIKIT_STDIN_ERROR=<why>` and no stdin.
 *
 * Response (daemon → shim), then the daemon closes:
 *
 *     "CNIKIT/1 <exit status> <stdout bytes> <stderr bytes>\n" <stdout> <stderr>
 *
 * The shim writes `stdout` to its stdout, `stderr` to its stderr and exits with the status. All
 * protocol validation happens in the daemon (protocol.ts); the shim answers only VERSION and the
 * no-command "about" text itself, and fails fast with code 11 (50 for STATUS) when the daemon
 * cannot be reached, or at the netconf's `timeoutSeconds` / `statusTimeoutSeconds` when it does
 * not answer.
 */
import { DecodeError } from "@cnikit/core";

/** Magic that starts every request and response. */
export const WIRE_MAGIC = "CNIKIT/1";
/** The environment variable carrying the shim's stdin read error. */
export const STDIN_ERROR_VAR = "CNIKIT_STDIN_ERROR";
/** Largest request the daemon reads (config JSON with a prevResult is a few KB). */
export const MAX_REQUEST_BYTES = 16 * 1024 * 1024;

/** A decoded request. */
export interface WireRequest {
  env: Record<string, string>;
  /** The plugin's stdin, or the error the shim got reading it. */
  stdin: Uint8Array | { error: string };
}

/** A response. */
export interface WireResponse {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Encodes a request (what the shims send). Throws `DecodeError` for a NUL inside a key or value. */
export function encodeRequest(request: WireRequest): Buffer {
  const parts: Buffer[] = [Buffer.from(`${WIRE_MAGIC}\0`)];
  const env = { ...request.env };
  if (!(request.stdin instanceof Uint8Array)) env[STDIN_ERROR_VAR] = request.stdin.error;
  for (const [k, v] of Object.entries(env)) {
    if (k.includes("\0") || k.includes("=") || v.includes("\0")) throw new DecodeError(`[cnikit-cni] environment entry ${JSON.stringify(k)} holds a NUL or '='`);
    parts.push(Buffer.from(`${k}=${v}\0`));
  }
  parts.push(Buffer.from("\0"));
  if (request.stdin instanceof Uint8Array) parts.push(Buffer.from(request.stdin));
  return Buffer.concat(parts);
}

/** Decodes a request. Throws `DecodeError` (6) when the bytes are not one. Pure. */
export function decodeRequest(bytes: Uint8Array): WireRequest {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = Buffer.from(`${WIRE_MAGIC}\0`);
  if (buf.length < magic.length || !buf.subarray(0, magic.length).equals(magic)) {
    throw new DecodeError(`[cnikitd] request does not start with ${WIRE_MAGIC}: is the plugin executable the same version as the daemon?`);
  }
  const env: Record<string, string> = {};
  let off = magic.length;
  for (;;) {
    const end = buf.indexOf(0, off);
    if (end < 0) throw new DecodeError("[cnikitd] request ends inside the environment block");
    if (end === off) {
      off = end + 1;
      break;
    }
    const entry = buf.subarray(off, end).toString("utf8");
    const eq = entry.indexOf("=");
    if (eq <= 0) throw new DecodeError(`[cnikitd] bad environment entry ${JSON.stringify(entry)} in request`);
    env[entry.slice(0, eq)] = entry.slice(eq + 1);
    off = end + 1;
  }
  const error = env[STDIN_ERROR_VAR];
  if (error !== undefined) {
    delete env[STDIN_ERROR_VAR];
    return { env, stdin: { error } };
  }
  return { env, stdin: new Uint8Array(buf.subarray(off)) };
}

/** Encodes a response (what the daemon sends). */
export function encodeResponse(response: WireResponse): Buffer {
  const out = Buffer.from(response.stdout, "utf8");
  const err = Buffer.from(response.stderr, "utf8");
  return Buffer.concat([Buffer.from(`${WIRE_MAGIC} ${response.exitCode} ${out.length} ${err.length}\n`), out, err]);
}

/** Decodes a response. Throws `DecodeError` when the bytes are not a whole one. Pure. */
export function decodeResponse(bytes: Uint8Array): WireResponse {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const nl = buf.indexOf(10);
  const head = nl < 0 ? "" : buf.subarray(0, nl).toString("utf8");
  const m = /^CNIKIT\/1 (\d+) (\d+) (\d+)$/.exec(head);
  if (!m) throw new DecodeError(`[cnikit-cni] bad response header ${JSON.stringify(head.slice(0, 80))}`);
  const outLen = Number(m[2]);
  const errLen = Number(m[3]);
  if (buf.length !== nl + 1 + outLen + errLen) throw new DecodeError(`[cnikit-cni] response of ${buf.length} bytes does not match its header ${JSON.stringify(head)}`);
  return {
    exitCode: Number(m[1]),
    stdout: buf.subarray(nl + 1, nl + 1 + outLen).toString("utf8"),
    stderr: buf.subarray(nl + 1 + outLen).toString("utf8"),
  };
}
