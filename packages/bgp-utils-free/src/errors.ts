/**
 * Errors of bgp-utils-free. The package stands alone (no cnikit dependency), so it has its own small
 * hierarchy; callers test with `instanceof`, never with message text.
 */

/** Base class of every error this package throws. */
export class BgpError extends Error {
  override readonly name: string = "BgpError";
}

/**
 * A configuration or API argument is invalid. `field` is the path of the offending value (e.g.
 * `peers[2].asn`), `rule` says what it must be. Thrown before any state is changed.
 */
export class BgpConfigError extends BgpError {
  override readonly name = "BgpConfigError";
  readonly field: string;
  readonly rule: string;

  /** `field`: path of the bad value; `rule`: what it must be; `value`: what was given (for the message). */
  constructor(field: string, rule: string, value?: unknown) {
    const shown = value === undefined ? "" : ` (got ${safeShow(value)})`;
    super(`[bgp] ${field}: ${rule}${shown}`);
    this.field = field;
    this.rule = rule;
  }
}

/**
 * A received message is malformed in a way RFC 4271 §6 / RFC 7606 answers with a NOTIFICATION and a
 * session reset. Carries the code, subcode and data to send. Thrown by the decoders; a session
 * catches it, sends the NOTIFICATION and closes, so it never escapes a session.
 */
export class BgpNotificationError extends BgpError {
  override readonly name = "BgpNotificationError";
  readonly code: number;
  readonly subcode: number;
  readonly data: Uint8Array;

  /** `code`/`subcode`: the NOTIFICATION to send; `data`: its Data field; `reason`: for humans. */
  constructor(options: { code: number; subcode: number; data?: Uint8Array; reason: string }) {
    super(`[bgp] ${options.reason} (NOTIFICATION ${options.code}/${options.subcode})`);
    this.code = options.code;
    this.subcode = options.subcode;
    this.data = options.data ?? new Uint8Array(0);
  }
}

/** An operation needs an open session or a running speaker, and it is not (anymore). */
export class BgpStateError extends BgpError {
  override readonly name = "BgpStateError";
}

function safeShow(value: unknown): string {
  try {
    const s = typeof value === "string" ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value));
    return s.length > 80 ? `${s.slice(0, 77)}...` : s;
  } catch {
    return String(value);
  }
}
