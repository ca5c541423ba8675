/**
 * Field validation shared by the policy and cluster parsers: an issue collector, label keys and
 * values, label selectors, port names and CIDRs, with the API server's rules and wording.
 */
import { ConfigError, Prefix } from "@cnikit/core";
import { POLICY_PROTOCOLS, SELECTOR_OPERATORS, type LabelSelector, type PolicyProtocol, type SelectorOperator, type SelectorRequirement } from "./types.ts";

/** Component name at the start of error messages. */
export const COMPONENT = "netpol";

export interface Issue {
  field: string;
  rule: string;
  value?: unknown;
}

/** Collects every issue of one object (the API server reports them all), then throws the first. */
export class Issues {
  readonly list: Issue[] = [];

  add(field: string, rule: string, value?: unknown): void {
    this.list.push(value === undefined ? { field, rule } : { field, rule, value });
  }

  /**
   * A ConfigError naming the first issue's field and rule (further issues are appended to the rule
   * text), with `where` (the document) in the component; undefined when there is none.
   */
  error(where: string): ConfigError | undefined {
    const first = this.list[0];
    if (!first) return undefined;
    const more = this.list.slice(1, 4).map((i) => `${i.field}: ${i.rule}`);
    const extra = this.list.length > 1 ? `; also ${more.join("; ")}${this.list.length > 4 ? ` and ${this.list.length - 4} more` : ""}` : "";
    return new ConfigError({ component: `${COMPONENT} ${where}`, field: first.field, rule: first.rule + extra, ...(first.value !== undefined ? { value: first.value } : {}) });
  }

  /** Throws `error(where)`; no-op when there is no issue. */
  throwIfAny(where: string): void {
    const err = this.error(where);
    if (err) throw err;
  }
}

/** Whether `v` is a plain (non-array, non-null) object. */
export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Reports keys of `obj` outside `known` (the API server's strict field validation). */
export function unknownFields(obj: Record<string, unknown>, known: readonly string[], path: string, issues: Issues): void {
  for (const k of Object.keys(obj)) {
    if (!known.includes(k)) issues.add(path === "" ? k : `${path}.${k}`, `unknown field "${k}" (known: ${known.join(", ")})`);
  }
}

const NAME_PART = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** The rule a label key breaks (a qualified name: optional DNS-subdomain prefix and a name part), or undefined. */
export function labelKeyProblem(key: string): string | undefined {
  const slash = key.indexOf("/");
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (slash >= 0) {
    const prefix = key.slice(0, slash);
    if (prefix === "") return "prefix part must be non-empty";
    if (prefix.length > 253) return "prefix part must be no more than 253 characters";
    if (!DNS1123_SUBDOMAIN.test(prefix)) return "prefix part must be a lowercase RFC 1123 subdomain";
    if (name.includes("/")) return "a qualified name must consist of an optional prefix and a name, separated by one '/'";
  }
  if (name === "") return "name part must be non-empty";
  if (name.length > 63) return "name part must be no more than 63 characters";
  if (!NAME_PART.test(name)) return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
  return undefined;
}

/** The rule a label value breaks, or undefined (empty values are valid). */
export function labelValueProblem(value: string): string | undefined {
  if (value === "") return undefined;
  if (value.length > 63) return "must be no more than 63 characters";
  if (!NAME_PART.test(value)) return "a valid label value must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
  return undefined;
}

/** The rule a DNS-1123 label (namespace name) breaks, or undefined. */
export function dnsLabelProblem(v: string): string | undefined {
  if (v.length > 63) return "must be no more than 63 characters";
  if (!DNS1123_LABEL.test(v)) return "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
  return undefined;
}

/** The rule a DNS-1123 subdomain (object name) breaks, or undefined. */
export function dnsSubdomainProblem(v: string): string | undefined {
  if (v.length > 253) return "must be no more than 253 characters";
  if (!DNS1123_SUBDOMAIN.test(v)) return "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
  return undefined;
}

/** The rule an IANA service name (a named port) breaks, or undefined. */
export function portNameProblem(v: string): string | undefined {
  if (v.length > 15) return "must be no more than 15 characters";
  if (!/^[-a-z0-9]+$/.test(v)) return "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)";
  if (v.includes("--")) return "must not contain consecutive hyphens";
  if (!/[a-z]/.test(v)) return "must contain at least one letter (a-z)";
  if (v.startsWith("-") || v.endsWith("-")) return "must not begin or end with a hyphen";
  return undefined;
}

/** The API server's rule for a protocol (`Unsupported value: ...`), naming the upper-case spelling when only the case is wrong. */
const PROTOCOL_RULE = 'Unsupported value: supported values: "SCTP", "TCP", "UDP"';

/**
 * The rule `v` breaks as a protocol (exactly "TCP", "UDP" or "SCTP", upper case as NetworkPolicy
 * and Pod specs spell them), or undefined.
 */
export function protocolProblem(v: unknown): string | undefined {
  if (typeof v === "string" && (POLICY_PROTOCOLS as readonly string[]).includes(v)) return undefined;
  if (typeof v === "string" && (POLICY_PROTOCOLS as readonly string[]).includes(v.toUpperCase())) return `${PROTOCOL_RULE} (upper case: "${v.toUpperCase()}")`;
  return PROTOCOL_RULE;
}

/** The rule `v` breaks as a port number (an integer 1..65535; 0 is no port), or undefined. */
export function portNumberProblem(v: unknown): string | undefined {
  if (typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= 65535) return undefined;
  return "must be between 1 and 65535, inclusive";
}

/**
 * Checks a probe (a connection's protocol and destination port) as the evaluator takes it; `path`
 * prefixes the field names (`""` gives `protocol` and `port`, `"probe"` gives `probe.protocol`).
 * @throws ConfigError naming the field and the rule.
 */
export function checkProbe(probe: { protocol: unknown; port: unknown }, path: string): { protocol: PolicyProtocol; port: number } {
  const at = (f: string) => (path === "" ? f : `${path}.${f}`);
  const pp = protocolProblem(probe.protocol);
  if (pp !== undefined) throw new ConfigError({ component: COMPONENT, field: at("protocol"), rule: pp, value: probe.protocol });
  const np = portNumberProblem(probe.port);
  if (np !== undefined) throw new ConfigError({ component: COMPONENT, field: at("port"), rule: `${np} (a connection's destination port)`, value: probe.port });
  return { protocol: probe.protocol as PolicyProtocol, port: probe.port as number };
}

/** Validates a labels map (keys qualified names, values label values). */
export function parseLabels(v: unknown, path: string, issues: Issues): Record<string, string> {
  const out: Record<string, string> = {};
  if (v === undefined || v === null) return out;
  if (!isObject(v)) {
    issues.add(path, "must be a map of label keys to string values", v);
    return out;
  }
  for (const [k, val] of Object.entries(v)) {
    const kp = labelKeyProblem(k);
    if (kp !== undefined) issues.add(path, `key "${k}": ${kp}`);
    if (typeof val !== "string") {
      issues.add(`${path}.${k}`, 'must be a string (quote values such as "true" or "80")', val);
      continue;
    }
    const vp = labelValueProblem(val);
    if (vp !== undefined) issues.add(`${path}.${k}`, vp, val);
    out[k] = val;
  }
  return out;
}

/** Parses a metav1.LabelSelector with ValidateLabelSelector's rules; absent/null = the empty selector. */
export function parseSelector(v: unknown, path: string, issues: Issues): LabelSelector {
  const sel: LabelSelector = { matchLabels: {}, matchExpressions: [] };
  if (v === undefined || v === null) return sel;
  if (!isObject(v)) {
    issues.add(path, "must be a label selector object (matchLabels, matchExpressions)", v);
    return sel;
  }
  unknownFields(v, ["matchLabels", "matchExpressions"], path, issues);
  sel.matchLabels = parseLabels(v.matchLabels, `${path}.matchLabels`, issues);
  const exprs = v.matchExpressions;
  if (exprs === undefined || exprs === null) return sel;
  if (!Array.isArray(exprs)) {
    issues.add(`${path}.matchExpressions`, "must be a list", exprs);
    return sel;
  }
  exprs.forEach((e, i) => {
    const p = `${path}.matchExpressions[${i}]`;
    if (!isObject(e)) {
      issues.add(p, "must be an object with key, operator and values", e);
      return;
    }
    unknownFields(e, ["key", "operator", "values"], p, issues);
    let ok = true;
    if (typeof e.key !== "string") {
      issues.add(`${p}.key`, "Required value: must be a label key string", e.key);
      ok = false;
    } else {
      const kp = labelKeyProblem(e.key);
      if (kp !== undefined) {
        issues.add(`${p}.key`, kp, e.key);
        ok = false;
      }
    }
    const op = e.operator;
    if (typeof op !== "string" || !(SELECTOR_OPERATORS as readonly string[]).includes(op)) {
      issues.add(`${p}.operator`, `Unsupported value: must be one of ${SELECTOR_OPERATORS.map((o) => `"${o}"`).join(", ")}`, op);
      return;
    }
    const values: string[] = [];
    if (e.values !== undefined && e.values !== null) {
      if (!Array.isArray(e.values)) {
        issues.add(`${p}.values`, "must be a list of strings", e.values);
        ok = false;
      } else {
        e.values.forEach((val, k) => {
          if (typeof val !== "string") {
            issues.add(`${p}.values[${k}]`, "must be a string", val);
            ok = false;
            return;
          }
          const vp = labelValueProblem(val);
          if (vp !== undefined) {
            issues.add(`${p}.values[${k}]`, vp, val);
            ok = false;
          }
          values.push(val);
        });
      }
    }
    if ((op === "In" || op === "NotIn") && values.length === 0 && ok) {
      issues.add(`${p}.values`, "Required value: must be specified when `operator` is 'In' or 'NotIn'");
      ok = false;
    }
    if ((op === "Exists" || op === "DoesNotExist") && values.length > 0) {
      issues.add(`${p}.values`, "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'", values);
      ok = false;
    }
    if (ok && typeof e.key === "string") sel.matchExpressions.push({ key: e.key, operator: op as SelectorOperator, values: [...values] });
  });
  return sel;
}

/** matchLabels as pairs, per (immutable) selector object: selectors are matched very often. */
const pairCache = new WeakMap<Readonly<Record<string, string>>, [string, string][]>();

/** Whether `labels` satisfy the selector (every matchLabels pair and every requirement). */
export function selectorMatches(sel: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  let pairs = pairCache.get(sel.matchLabels);
  if (!pairs) pairCache.set(sel.matchLabels, (pairs = Object.entries(sel.matchLabels)));
  for (const [k, v] of pairs) if (labels[k] !== v) return false;
  for (const r of sel.matchExpressions) if (!requirementMatches(r, labels)) return false;
  return true;
}

function requirementMatches(r: SelectorRequirement, labels: Readonly<Record<string, string>>): boolean {
  const has = Object.prototype.hasOwnProperty.call(labels, r.key);
  switch (r.operator) {
    case "In":
      return has && r.values.includes(labels[r.key]!);
    case "NotIn":
      return !has || !r.values.includes(labels[r.key]!);
    case "Exists":
      return has;
    case "DoesNotExist":
      return !has;
  }
}

/** Whether the selector is the empty one (selects everything). */
export function isEmptySelector(sel: LabelSelector): boolean {
  return Object.keys(sel.matchLabels).length === 0 && sel.matchExpressions.length === 0;
}

/** Text of a selector for explanations: `{}` or `pod=a,ns in (x,y)`. */
export function selectorText(sel: LabelSelector): string {
  const parts = Object.entries(sel.matchLabels)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`);
  for (const r of sel.matchExpressions) {
    if (r.operator === "In") parts.push(`${r.key} in (${r.values.join(",")})`);
    else if (r.operator === "NotIn") parts.push(`${r.key} notin (${r.values.join(",")})`);
    else if (r.operator === "Exists") parts.push(r.key);
    else parts.push(`!${r.key}`);
  }
  return parts.length === 0 ? "{}" : parts.join(",");
}

/** Parses a CIDR as the API server does (host bits allowed and cleared); undefined after an issue. */
export function parseCidr(v: unknown, path: string, issues: Issues): Prefix | undefined {
  if (typeof v !== "string" || v === "") {
    issues.add(path, "Required value: must be a CIDR string such as 10.0.0.0/16", v);
    return undefined;
  }
  try {
    return Prefix.parse(v, { allowHostBits: true, field: path });
  } catch (err) {
    issues.add(path, `must be a valid CIDR (${err instanceof ConfigError ? err.rule : String(err)})`, v);
    return undefined;
  }
}
