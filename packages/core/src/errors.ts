/**
 * Typed errors. One `CniError` renders the CNI spec's error JSON; one subclass per condition so
 * callers test with `instanceof`, never with message text.
 *
 * Codes 0-99 mean what the CNI spec (1.1.0, section "Error") says; ours start at 100.
 * Messages start with the component's name in brackets and say what to do:
 * `[flannel] SubnetLen: SubnetLen must be less than /31 (Network 10.244.0.0/16)`.
 */

export const CniCode = {
  /** Incompatible CNI version. */
  IncompatibleVersion: 1,
  /** Unsupported field in network configuration; details name the key and value. */
  UnsupportedField: 2,
  /** Container unknown or does not exist (no DEL needed). */
  UnknownContainer: 3,
  /** Invalid necessary environment variables (CNI_COMMAND, CNI_CONTAINERID, ...). */
  InvalidEnvironment: 4,
  /** I/O failure, e.g. failed to read stdin. */
  IoFailure: 5,
  /** Failed to decode content (JSON). */
  DecodingFailure: 6,
  /** Invalid network config. */
  InvalidNetworkConfig: 7,
  /** Netns that the plugin was asked to use is its own (library convention). */
  OwnNetns: 8,
  /** Try again later: transient condition (datastore unavailable, lost race after retries). */
  TryAgainLater: 11,
  /** STATUS: the plugin cannot service ADD requests. */
  PluginNotAvailable: 50,
  /** STATUS: not available, and existing containers may be impaired. */
  PluginNotAvailableLimitedConnectivity: 51,
  // ---- cnikit's own codes (>= 100) ----
  /** An address pool, subnet range or block set has no free entry left. */
  PoolExhausted: 100,
  /** The requested address is held by someone else, or is reserved. */
  AddressInUse: 101,
  /** A compare-and-swap on the datastore failed: someone else wrote first. */
  Conflict: 102,
  /** The thing asked for does not exist (a key, a lease, an attachment). */
  NotFound: 103,
  /** The running kernel lacks a feature the configuration needs (ipip, wireguard, xfrm, ...). */
  KernelLacksFeature: 104,
  /** A datastore watch asked for a revision that has been compacted away. */
  Compacted: 105,
  /** A CHECK found the attachment's state different from what ADD set up. */
  CheckFailed: 106,
  /** The component was used after it was stopped or closed. */
  Closed: 107,
  /** CNI ADD of an attachment that already exists (its interface is in the container): DEL it first. */
  AttachmentExists: 108,
  /** An invariant of our own broke: a bug. */
  Internal: 999,
} as const;
export type CniCode = (typeof CniCode)[keyof typeof CniCode];

export interface CniErrorOptions {
  /** Longer explanation for the spec's `details` field. */
  details?: string;
  /** The error that led to this one. */
  cause?: unknown;
}

/** The spec's error JSON: `{cniVersion, code, msg, details}`. */
export interface CniErrorJson {
  cniVersion?: string;
  code: number;
  msg: string;
  details?: string;
}

export class CniError extends Error {
  readonly code: number;
  /** The spec's `msg`: the same as `message`. */
  readonly msg: string;
  readonly details: string | undefined;

  constructor(code: number, msg: string, options: CniErrorOptions = {}) {
    super(msg, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.msg = msg;
    this.details = options.details;
  }

  /** Whether a caller may retry the same operation later and expect it to succeed. */
  get retryable(): boolean {
    return this.code === CniCode.TryAgainLater;
  }

  /** Renders the spec's error object; `cniVersion` is included when given (the spec advises it). */
  toJSON(cniVersion?: string): CniErrorJson {
    const out: CniErrorJson = cniVersion === undefined ? { code: this.code, msg: this.msg } : { cniVersion, code: this.code, msg: this.msg };
    if (this.details !== undefined) out.details = this.details;
    return out;
  }

  /**
   * Wraps anything thrown into a CniError (untyped errors become code 999, as libcni does). A
   * CniError of another copy of this package (a bundled backend's) is recognised by its shape, not
   * `instanceof`: an integer `code` with the spec's string `msg`, or with a specific error `name`
   * (`PoolExhaustedError`, not plain `Error`); it keeps its code, message, details and name.
   */
  static from(err: unknown): CniError {
    if (err instanceof CniError) return err;
    const like = cniErrorLike(err);
    if (like) {
      const e = new CniError(like.code, like.msg, like.details === undefined ? { cause: err } : { details: like.details, cause: err });
      e.name = like.name;
      return e;
    }
    const message = err instanceof Error ? err.message : String(err);
    return new CniError(CniCode.Internal, message, { cause: err });
  }
}

/** The code, message, details and name of a CniError made by another copy of this package (duck-typed), else undefined. */
function cniErrorLike(err: unknown): { code: number; msg: string; details?: string; name: string } | undefined {
  if (err === null || typeof err !== "object") return undefined;
  const o = err as { code?: unknown; msg?: unknown; message?: unknown; details?: unknown; name?: unknown };
  const code = o.code;
  if (typeof code !== "number" || !Number.isInteger(code)) return undefined;
  // A code the spec or cnikit defines (a DOMException's AbortError has code 20, a gRPC error a status code).
  if (!((code >= 100 && code <= 999) || Object.values(CniCode).some((c) => c === code))) return undefined;
  const name = typeof o.name === "string" ? o.name : "CniError";
  if (typeof o.msg !== "string" && !(/.Error$/.test(name) && name !== "Error")) return undefined;
  const msg = typeof o.msg === "string" ? o.msg : typeof o.message === "string" ? o.message : name;
  return typeof o.details === "string" ? { code, msg, details: o.details, name } : { code, msg, name };
}

function prefix(component: string | undefined): string {
  return component ? `[${component}] ` : "";
}

export interface ConfigErrorInit {
  /** Backend or component name, shown in brackets at the start of the message. */
  component?: string;
  /** Path of the offending field, e.g. `Backend.VNI` or `spec.blockSize` or `ranges[0][1].subnet`. */
  field: string;
  /** The rule that was broken, in words a person can act on. */
  rule: string;
  /** The value that broke it, echoed in details. */
  value?: unknown;
  cause?: unknown;
}

/** Code 7: a configuration (or any parsed public input) breaks a rule. Names the field and the rule. */
export class ConfigError extends CniError {
  readonly field: string;
  readonly rule: string;
  readonly value: unknown;
  readonly component: string | undefined;

  constructor(init: ConfigErrorInit) {
    const shown = init.value === undefined ? "" : ` (got ${safeJson(init.value)})`;
    super(CniCode.InvalidNetworkConfig, `${prefix(init.component)}${init.field}: ${init.rule}${shown}`, {
      details: `field ${init.field}: ${init.rule}`,
      cause: init.cause,
    });
    this.field = init.field;
    this.rule = init.rule;
    this.value = init.value;
    this.component = init.component;
  }
}

/** Code 2: a field that this plugin does not support (the key and value are named). */
export class UnsupportedFieldError extends CniError {
  readonly field: string;
  constructor(init: { component?: string; field: string; value?: unknown; rule?: string }) {
    const rule = init.rule ?? "is not supported";
    super(CniCode.UnsupportedField, `${prefix(init.component)}${init.field}: ${rule}`, {
      details: `${init.field}=${safeJson(init.value)}`,
    });
    this.field = init.field;
  }
}

export class VersionError extends CniError {
  constructor(msg: string, details?: string) {
    super(CniCode.IncompatibleVersion, msg, details === undefined ? {} : { details });
  }
}
export class UnknownContainerError extends CniError {
  constructor(msg: string, details?: string) {
    super(CniCode.UnknownContainer, msg, details === undefined ? {} : { details });
  }
}
export class EnvError extends CniError {
  constructor(msg: string, details?: string) {
    super(CniCode.InvalidEnvironment, msg, details === undefined ? {} : { details });
  }
}
export class IoError extends CniError {
  constructor(msg: string, options: CniErrorOptions = {}) {
    super(CniCode.IoFailure, msg, options);
  }
}
export class DecodeError extends CniError {
  constructor(msg: string, options: CniErrorOptions = {}) {
    super(CniCode.DecodingFailure, msg, options);
  }
}

/** Code 11: transient. The operation changed nothing and may be retried. */
export class TryAgainError extends CniError {
  constructor(msg: string, options: CniErrorOptions = {}) {
    super(CniCode.TryAgainLater, msg, options);
  }
}

/** Codes 50/51 for STATUS. */
export class NotReadyError extends CniError {
  constructor(msg: string, options: CniErrorOptions & { impaired?: boolean } = {}) {
    super(options.impaired ? CniCode.PluginNotAvailableLimitedConnectivity : CniCode.PluginNotAvailable, msg, options);
  }
}

/** Code 100: nothing free left. The pool's state is unchanged. */
export class PoolExhaustedError extends CniError {
  readonly pool: string;
  constructor(pool: string, msg: string, options: CniErrorOptions = {}) {
    super(CniCode.PoolExhausted, msg, options);
    this.pool = pool;
  }
}

/** Code 101: the requested address is taken or reserved. */
export class AddressInUseError extends CniError {
  readonly address: string;
  constructor(address: string, msg: string, options: CniErrorOptions = {}) {
    super(CniCode.AddressInUse, msg, options);
    this.address = address;
  }
}

/** Code 102: a compare-and-swap lost (the key's revision was not the one expected). */
export class ConflictError extends CniError {
  readonly key: string;
  constructor(key: string, msg: string, options: CniErrorOptions = {}) {
    super(CniCode.Conflict, msg, options);
    this.key = key;
  }
}
/** A flannel-style lease CAS that lost; retried with jitter by the callers that own leases. */
export class LeaseConflictError extends ConflictError {}

/** Code 103. */
export class NotFoundError extends CniError {
  constructor(msg: string, options: CniErrorOptions = {}) {
    super(CniCode.NotFound, msg, options);
  }
}

/** Code 104: "kernel lacks X" — the mode runs in the simulator only until a userspace datapath exists. */
export class KernelLacksError extends CniError {
  readonly feature: string;
  constructor(feature: string, msg?: string) {
    super(CniCode.KernelLacksFeature, msg ?? `kernel lacks ${feature}: this mode runs only in the simulator here`);
    this.feature = feature;
  }
}

/** Code 105: a watch's start revision was compacted; re-list and watch again. */
export class CompactedError extends CniError {
  readonly compactRevision: number;
  constructor(compactRevision: number, msg: string) {
    super(CniCode.Compacted, msg);
    this.compactRevision = compactRevision;
  }
}

/** Code 106: CHECK found drift. */
export class CheckFailedError extends CniError {
  constructor(msg: string, options: CniErrorOptions = {}) {
    super(CniCode.CheckFailed, msg, options);
  }
}

/** Code 107: used after stop()/close(). */
export class ClosedError extends CniError {
  constructor(msg: string) {
    super(CniCode.Closed, msg);
  }
}

function safeJson(value: unknown): string {
  try {
    const text = JSON.stringify(value);
    if (text === undefined) return String(value);
    return text.length > 200 ? `${text.slice(0, 197)}...` : text;
  } catch {
    return String(value);
  }
}
