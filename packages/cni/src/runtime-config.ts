/**
 * Network configuration lists (conflists) as a container runtime loads them: parsing and
 * validation with errors that name the field, and the per-plugin configuration the runtime writes
 * to each plugin's stdin (DESIGN.md "The CNI rules" §4: `cniVersion`, `name`, `runtimeConfig` from the declared
 * capabilities, `prevResult`; every other key passes through; `capabilities` is stripped).
 */
import { CniError, ConfigError, DecodeError } from "@cnikit/core";
import { parseVersion, validateNetworkName } from "./protocol.ts";

const COMPONENT = "cni-runtime";

/** One entry of a conflist's `plugins`. */
export interface PluginConf {
  /** The plugin's executable name, looked up in the runtime's CNI path. */
  readonly type: string;
  /** The capabilities the entry declares (`{"portMappings": true}`); only `true` ones count. */
  readonly capabilities: Readonly<Record<string, boolean>>;
  /** The entry as given; everything but `capabilities` is passed to the plugin. */
  readonly raw: Readonly<Record<string, unknown>>;
}

/** A validated conflist. */
export interface NetworkConfigList {
  readonly name: string;
  /** `cniVersion` as given (undefined when only `cniVersions` was). */
  readonly cniVersion: string | undefined;
  /** `cniVersions` as given ([] when absent). */
  readonly cniVersions: readonly string[];
  /**
   * The versions the list may be run at, highest first, without duplicates: `cniVersions` plus
   * `cniVersion`. The runtime runs the list at the highest of these that it and every plugin
   * support (see `CniRuntime.negotiate`).
   */
  readonly candidateVersions: readonly string[];
  readonly disableCheck: boolean;
  readonly disableGC: boolean;
  readonly plugins: readonly PluginConf[];
  /** The whole list as given. */
  readonly raw: Readonly<Record<string, unknown>>;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function fail(field: string, rule: string, value?: unknown): never {
  throw new ConfigError({ component: COMPONENT, field, rule, ...(value !== undefined ? { value } : {}) });
}

function version(text: unknown, field: string): string {
  if (typeof text !== "string") fail(field, 'must be a version string like "1.0.0"', text);
  try {
    parseVersion(text);
  } catch {
    fail(field, 'must be a version of the form x.y.z, e.g. "1.0.0"', text);
  }
  return text;
}

function flag(v: unknown, field: string): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v === "boolean") return v;
  // libcni accepts the strings too (strconv.ParseBool).
  if (v === "true" || v === "1") return true;
  if (v === "false" || v === "0") return false;
  return fail(field, "must be a boolean", v);
}

function comparePlain(a: string, b: string): number {
  const pa = parseVersion(a);
  const pb = parseVersion(b);
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return pa[i]! - pb[i]!;
  return 0;
}

function pluginConf(entry: unknown, field: string): PluginConf {
  if (!isObject(entry)) fail(field, 'must be an object with at least a "type"', entry);
  const type = entry["type"];
  if (typeof type !== "string" || type === "") fail(`${field}.type`, "is required: the plugin executable's name", type);
  if (type.includes("/") || type === "." || type === "..") fail(`${field}.type`, 'must be a file name without "/" (plugins are looked up in the CNI path)', type);
  const capabilities: Record<string, boolean> = {};
  const caps = entry["capabilities"];
  if (caps !== undefined && caps !== null) {
    if (!isObject(caps)) fail(`${field}.capabilities`, 'must be an object of capability name to boolean, e.g. {"portMappings": true}', caps);
    for (const [key, value] of Object.entries(caps)) {
      if (typeof value !== "boolean") fail(`${field}.capabilities.${key}`, "must be a boolean", value);
      capabilities[key] = value;
    }
  }
  return { type, capabilities, raw: entry };
}

/**
 * Parses and validates a conflist (JSON text, bytes, or an already parsed object). Rules:
 * `name` required, `^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`; `cniVersion` and/or `cniVersions` (at least
 * one; every entry `x.y.z`); `disableCheck` / `disableGC` booleans (or "true"/"false");
 * `plugins` a non-empty list of objects, each with a `type` that is a file name and optional
 * `capabilities` of booleans. A single-plugin configuration (a `type` and no `plugins`) is accepted
 * and becomes a list of one, as libcni's `ConfListFromConf` does. Pure.
 * Throws `DecodeError` (6) when the text is not JSON, `ConfigError` (7) naming the field and rule
 * for anything else.
 */
export function loadConfList(input: string | Uint8Array | Record<string, unknown>): NetworkConfigList {
  let raw: unknown = input;
  if (typeof input === "string" || input instanceof Uint8Array) {
    const text = typeof input === "string" ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength).toString("utf8");
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw new DecodeError(`[${COMPONENT}] conflist is not JSON: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  if (!isObject(raw)) fail("(root)", "a conflist must be a JSON object", Array.isArray(raw) ? "an array" : raw);

  const name = raw["name"];
  if (typeof name !== "string" || name === "") fail("name", "is required: the network's name", name);
  try {
    validateNetworkName(name);
  } catch (err) {
    if (!(err instanceof CniError)) throw err;
    fail("name", "must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$", name);
  }

  let cniVersion: string | undefined;
  if (raw["cniVersion"] !== undefined && raw["cniVersion"] !== null && raw["cniVersion"] !== "") cniVersion = version(raw["cniVersion"], "cniVersion");
  const cniVersions: string[] = [];
  if (raw["cniVersions"] !== undefined && raw["cniVersions"] !== null) {
    const list = raw["cniVersions"];
    if (!Array.isArray(list) || list.length === 0) fail("cniVersions", 'must be a non-empty list of version strings, e.g. ["1.0.0", "1.1.0"]', list);
    list.forEach((v: unknown, i) => cniVersions.push(version(v, `cniVersions[${i}]`)));
  }
  if (cniVersion === undefined && cniVersions.length === 0) {
    fail("cniVersion", 'is required (or cniVersions): the CNI version(s) the list may be run at, e.g. "1.0.0"');
  }
  const candidateVersions = [...new Set([...cniVersions, ...(cniVersion !== undefined ? [cniVersion] : [])])].sort((a, b) => comparePlain(b, a));

  const disableCheck = flag(raw["disableCheck"], "disableCheck");
  const disableGC = flag(raw["disableGC"], "disableGC");

  let plugins: PluginConf[];
  const list = raw["plugins"];
  if (list === undefined && typeof raw["type"] === "string") {
    const single: Record<string, unknown> = { ...raw };
    for (const key of ["name", "cniVersion", "cniVersions", "disableCheck", "disableGC"]) delete single[key];
    plugins = [pluginConf(single, "(root)")];
  } else {
    if (!Array.isArray(list)) fail("plugins", 'is required: a list of plugin configurations, each with a "type"', list);
    if (list.length === 0) fail("plugins", "must list at least one plugin");
    plugins = list.map((entry: unknown, i) => pluginConf(entry, `plugins[${i}]`));
  }
  return { name, cniVersion, cniVersions, candidateVersions, disableCheck, disableGC, plugins, raw };
}

/** What the runtime injects into one plugin's configuration. */
export interface InjectOptions {
  /** The version the list runs at. */
  cniVersion: string;
  /** The runtime's capability arguments (portMappings, ipRanges, bandwidth, dns, ips, mac, ...). */
  capabilityArgs?: Readonly<Record<string, unknown>> | undefined;
  /** The previous plugin's result (ADD) or the cached result (DEL, CHECK); absent on the first ADD. */
  prevResult?: Readonly<Record<string, unknown>> | undefined;
  /** Extra top-level keys (GC's `cni.dev/valid-attachments`). */
  extra?: Readonly<Record<string, unknown>>;
}

/**
 * The configuration one plugin gets on stdin: its entry without `capabilities` (and without any
 * `prevResult` of its own), with `cniVersion` and `name` set from the list, `runtimeConfig` =
 * the declared capabilities that the runtime has arguments for (replacing the entry's own
 * `runtimeConfig` only when that set is non-empty; omitted when empty), and `prevResult` when
 * given. Pure.
 */
export function pluginConfig(list: NetworkConfigList, plugin: PluginConf, options: InjectOptions): Record<string, unknown> {
  const out: Record<string, unknown> = { cniVersion: options.cniVersion, name: list.name };
  for (const [key, value] of Object.entries(plugin.raw)) {
    if (key === "capabilities" || key === "prevResult" || key === "cniVersion" || key === "name") continue;
    out[key] = value;
  }
  const runtimeConfig: Record<string, unknown> = {};
  if (options.capabilityArgs) {
    for (const [capability, declared] of Object.entries(plugin.capabilities)) {
      if (declared && Object.hasOwn(options.capabilityArgs, capability)) runtimeConfig[capability] = options.capabilityArgs[capability];
    }
  }
  if (Object.keys(runtimeConfig).length > 0) out["runtimeConfig"] = runtimeConfig;
  if (options.prevResult !== undefined) out["prevResult"] = options.prevResult;
  if (options.extra) Object.assign(out, options.extra);
  return out;
}
