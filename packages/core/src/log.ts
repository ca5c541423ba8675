/**
 * Loggers: `createLogger` writes one JSON line per record (to stderr unless given a sink);
 * `memoryLogger` keeps records in an array for tests. `silentLogger` lives in backend.ts.
 */
import type { Logger } from "./backend.ts";
import type { Clock } from "./clock.ts";
import { ConfigError } from "./errors.ts";

export const LogLevel = { debug: "debug", info: "info", warn: "warn", error: "error" } as const;
export type LogLevel = (typeof LogLevel)[keyof typeof LogLevel];

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** One log record, as written (JSON) by `createLogger` and kept by `memoryLogger`. */
export interface LogRecord {
  /** Milliseconds since the epoch (or the clock's epoch when a clock was given). */
  time: number;
  level: LogLevel;
  /** The logger's name (component or node). */
  name: string;
  msg: string;
  /** Structured context; absent when none was given. */
  fields?: Record<string, unknown>;
}

export interface CreateLoggerOptions {
  /** Shown in every record, e.g. `flannel/node-1`. */
  name: string;
  /** Records below this level are discarded. Default `info`. */
  level?: LogLevel;
  /** Receives each line (no trailing newline). Default: written to stderr with a newline. */
  sink?: (line: string) => void;
  /** Time source for the `time` field (a VirtualClock gives virtual time). Default: wall time. */
  clock?: Clock;
}

function checkOptions(name: unknown, level: unknown): void {
  if (typeof name !== "string" || name.length === 0) {
    throw new ConfigError({ component: "log", field: "name", rule: "must be a non-empty string", value: name });
  }
  if (level !== undefined && !(typeof level === "string" && Object.hasOwn(RANK, level))) {
    throw new ConfigError({ component: "log", field: "level", rule: "must be one of debug, info, warn, error", value: level });
  }
}

/**
 * A JSON-lines logger: each record becomes `{"time":"<ISO 8601>","level":...,"name":...,"msg":...,
 * "fields":{...}}` on one line. Fields are made JSON-safe: bigints become strings, Errors become
 * `{name, message, code?}`, cycles become `"[Circular]"`; a field value that cannot be serialised
 * never makes logging throw. Throws `ConfigError` for an empty name or an unknown level.
 */
export function createLogger(options: CreateLoggerOptions): Logger {
  checkOptions(options.name, options.level);
  const name = options.name;
  const min = RANK[options.level ?? "info"];
  const sink = options.sink ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const now = options.clock ? () => options.clock!.now() : () => Date.now();
  const write = (level: LogLevel, msg: string, fields: Record<string, unknown> | undefined): void => {
    if (RANK[level] < min) return;
    sink(formatRecord({ time: now(), level, name, msg, ...(hasFields(fields) ? { fields } : {}) }));
  };
  return {
    debug: (msg, fields) => write("debug", msg, fields),
    info: (msg, fields) => write("info", msg, fields),
    warn: (msg, fields) => write("warn", msg, fields),
    error: (msg, fields) => write("error", msg, fields),
  };
}

/**
 * A logger that keeps records in memory (for tests): `records` grows with every record at or above
 * `level` (default `debug`, i.e. everything). Fields are kept as given (not copied).
 */
export function memoryLogger(options: { name?: string; level?: LogLevel; clock?: Clock } = {}): {
  logger: Logger;
  records: LogRecord[];
} {
  const name = options.name ?? "test";
  checkOptions(name, options.level);
  const min = RANK[options.level ?? "debug"];
  const now = options.clock ? () => options.clock!.now() : () => Date.now();
  const records: LogRecord[] = [];
  const write = (level: LogLevel, msg: string, fields: Record<string, unknown> | undefined): void => {
    if (RANK[level] < min) return;
    records.push({ time: now(), level, name, msg, ...(hasFields(fields) ? { fields } : {}) });
  };
  const logger: Logger = {
    debug: (msg, fields) => write("debug", msg, fields),
    info: (msg, fields) => write("info", msg, fields),
    warn: (msg, fields) => write("warn", msg, fields),
    error: (msg, fields) => write("error", msg, fields),
  };
  return { logger, records };
}

function hasFields(fields: Record<string, unknown> | undefined): fields is Record<string, unknown> {
  return fields !== undefined && fields !== null && Object.keys(fields).length > 0;
}

/**
 * Renders a record as one JSON line (no newline). `time` becomes ISO 8601 when it is a valid date,
 * else stays the number (null when not finite). Never throws: fields that cannot be serialised are replaced by `"[unserialisable: <why>]"`.
 */
export function formatRecord(record: LogRecord): string {
  const date = new Date(record.time);
  const time = Number.isNaN(date.getTime()) ? record.time : date.toISOString();
  const out: Record<string, unknown> = { time, level: record.level, name: record.name, msg: String(record.msg) };
  if (record.fields !== undefined) {
    try {
      out["fields"] = jsonSafe(record.fields, []);
    } catch (err) {
      out["fields"] = `[unserialisable: ${err instanceof Error ? err.message : String(err)}]`;
    }
  }
  return JSON.stringify(out);
}

/** A plain-JSON copy of `value`: bigint -> string, Error -> {name, message, code?}, cycle -> "[Circular]". */
function jsonSafe(value: unknown, ancestors: object[]): unknown {
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "function" || typeof value === "symbol" || value === undefined) return undefined;
  if (typeof value === "number" && !Number.isFinite(value)) return String(value);
  if (typeof value !== "object" || value === null) return value;
  if (ancestors.includes(value)) return "[Circular]";
  if (value instanceof Error) {
    const err: Record<string, unknown> = { name: value.name, message: value.message };
    const code = (value as { code?: unknown }).code;
    if (code !== undefined) err["code"] = jsonSafe(code, ancestors);
    return err;
  }
  const withToJson = value as { toJSON?: unknown };
  if (typeof withToJson.toJSON === "function") return jsonSafe((withToJson.toJSON as () => unknown).call(value), ancestors);
  const inner = [...ancestors, value];
  if (Array.isArray(value)) return value.map((item) => jsonSafe(item, inner) ?? null);
  if (ArrayBuffer.isView(value)) return `<${value.byteLength} bytes>`;
  if (value instanceof Map) return jsonSafe(Object.fromEntries(value), inner);
  if (value instanceof Set) return jsonSafe([...value], inner);
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    const safe = jsonSafe(item, inner);
    if (safe !== undefined) out[key] = safe;
  }
  return out;
}
