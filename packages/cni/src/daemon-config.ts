/**
 * cnikitd's configuration file (JSON) and the assembly of a running daemon from it: stores,
 * peer transport, renderer, logger, `CniDaemon`.
 *
 * ```json
 * {
 *   "node": { "name": "node-1", "labels": {},
 *             "underlay": [{ "iface": "eth0", "address": "192.0.2.10", "prefixLength": 24, "gateway": "192.0.2.1" }] },
 *   "backend": "flannel",                       // flannel | calico | reference (or "@cnikit/flannel"),
 *                                               // or a backend module of your own:
 *                                               // { "module": "/opt/my-backend/index.js" | "./rel.js" | "my-backend-pkg",
 *                                               //   "from": "/opt/project",   // where a package name resolves (default: this file's dir)
 *                                               //   "export": "myBackend" }   // default: the module's single Backend export
 *   "backendConfig": { "Network": "10.244.0.0/16", "Backend": { "Type": "vxlan" } },
 *                                               // or a path: .json is parsed, anything else (calico YAML)
 *                                               // is handed to the backend's parser as text; a string
 *                                               // with a newline is the config text itself
 *   "store": "file:/var/lib/cnikit/node-1/store", // default (the node's name in it); or etcd://host:port[,host:port][/prefix]
 *   "localStateDir": "/var/lib/cnikit/node-1/local", // default
 *   "localFsync": false,                         // default: fsync node-local writes? (see DaemonConfig)
 *   "socketPath": "/run/cnikit/node-1/cnikitd.sock", // default
 *   "peers": { "listen": "192.0.2.10:7946", "advertise": "192.0.2.10:7946" },  // optional
 *   "renderer": { "type": "linux", "netns": "cnikit-node-1", ...options for LinuxRenderer },
 *                                               // required: linux without netns acts on cnikitd's own
 *                                               // namespace (the host's, NAT included): say so
 *                                               // explicitly; stateDir default /run/cnikit/node-1/linux
 *   "logLevel": "info",                          // debug | info | warn | error
 *   "seed": 1                                    // the agent's random seed; default derived from node.name
 * }
 * ```
 *
 * Defaults hold the node's name (`daemonDefaults`), so two daemons given only different names
 * do not share a file. Relative paths are relative to the config file's directory. Every rule broken is a
 * `ConfigError` naming the field (`node.underlay[0].address`, `backendConfig.Backend.VNI`, ...).
 * Without `peers` the agent gets a transport that reaches nobody (a single node).
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, isAbsolute, join, resolve as resolvePath } from "node:path";
import { pathToFileURL } from "node:url";
import { ConfigError, FileDatastore, MemoryNetwork, RealClock, TcpPeerTransport, addressRange, createLogger, isAddress, parseAddress, seededRandom, seedFromString } from "@cnikit/core";
import type { Backend, Datastore, LogLevel, Logger, NodeInfo, PeerAddress, PeerTransport, UnderlayInterface, UserspaceDatapath } from "@cnikit/core";
import { builtinBackends } from "@cnikit/backends";
import { EtcdDatastore } from "@cnikit/etcd";
import { RecordingApplier, type DataplaneApplier } from "./applier.ts";
import { CniDaemon } from "./daemon.ts";

const C = "cnikitd";

/** Where the cluster store lives. */
export type StoreSpec = { kind: "file"; dir: string } | { kind: "etcd"; endpoints: string[]; prefix: string };

/** The renderer that applies dataplanes. */
export interface RendererSpec {
  /** `linux`: @cnikit/linux's LinuxRenderer; `none`: remember the dataplane only (no kernel). */
  type: "linux" | "none";
  /** Everything else in the `renderer` object, handed to the renderer. */
  options: Record<string, unknown>;
}

/**
 * A backend module named by the config (`backend: {module, from?, export?}`): `module` is an
 * absolute path, a path relative to the config file's directory, or a package name resolved from
 * `from` as an ESM import there would resolve it; `export` picks the export (default: the module's
 * single export that looks like a Backend).
 */
export interface BackendModuleSpec {
  /** As written (a path or a package name). */
  module: string;
  /** The directory a package name resolves from (absolute). */
  from: string;
  export?: string;
}

/** A validated daemon configuration. */
export interface DaemonConfig extends BackendSettings {
  node: NodeInfo;
  localStateDir: string;
  /**
   * Whether node-local writes (pod reservations) are fsync'd before ADD answers. Default false:
   * the local store survives a daemon crash (kill -9) either way; only a power loss can lose the
   * last reservations, and a power loss takes their pods with it (host-local does not fsync
   * either). The cluster store (file) always fsyncs.
   */
  localFsync?: boolean;
  socketPath: string;
  peers?: { listen: PeerAddress; advertise?: PeerAddress };
  renderer: RendererSpec;
}

/** Key under which each cnikitd publishes its peer address (`{host, port}` JSON). */
export const DAEMON_PREFIX = "/cnikit/daemons/";

const DEFAULT_STORE_DIR = "/var/lib/cnikit/store";

/** Where cnikitd keeps its state by default: everything under directories named after the node. */
export interface DaemonDefaults {
  /** The file cluster store (`store` absent): `/var/lib/cnikit/<node>/store`. */
  storeDir: string;
  /** `localStateDir`: `/var/lib/cnikit/<node>/local`. */
  localStateDir: string;
  /** `socketPath`: `/run/cnikit/<node>/cnikitd.sock` (cnikit-cni finds it when it is the only one). */
  socketPath: string;
  /** The linux renderer's `stateDir`: `/run/cnikit/<node>/linux`. */
  rendererStateDir: string;
}

/** The defaults of a cnikitd for node `node` (see `DaemonDefaults`). */
export function daemonDefaults(node: string): DaemonDefaults {
  return {
    storeDir: `/var/lib/cnikit/${node}/store`,
    localStateDir: `/var/lib/cnikit/${node}/local`,
    socketPath: `/run/cnikit/${node}/cnikitd.sock`,
    rendererStateDir: `/run/cnikit/${node}/linux`,
  };
}
const TOP_KEYS = new Set(["node", "backend", "backendConfig", "store", "localStateDir", "localFsync", "socketPath", "peers", "renderer", "logLevel", "seed"]);

function err(field: string, rule: string, value?: unknown): ConfigError {
  return new ConfigError({ component: C, field, rule, ...(value === undefined ? {} : { value }) });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function str(v: unknown, field: string): string {
  if (typeof v !== "string" || v === "") throw err(field, "must be a non-empty string", v);
  return v;
}

function ip(v: unknown, field: string): string {
  try {
    parseAddress(v, { field });
  } catch {
    throw err(field, "must be an IPv4 or IPv6 address", v);
  }
  return v as string;
}

function stringMap(v: unknown, field: string): Record<string, string> {
  if (!isObject(v) || Object.values(v).some((x) => typeof x !== "string")) throw err(field, "must be an object of strings", v);
  return { ...(v as Record<string, string>) };
}

function parseNode(v: unknown): NodeInfo {
  if (!isObject(v)) throw err("node", "must be an object {name, underlay, labels?}", v);
  const node: NodeInfo = { name: str(v["name"], "node.name"), underlay: [] };
  if (!/^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$/.test(node.name)) {
    throw err(
      "node.name",
      "must be a node name: letters, digits, '.', '_' and '-', starting and ending with a letter or digit, at most 253 characters (it names the default state directories)",
      node.name,
    );
  }
  if (!Array.isArray(v["underlay"]) || v["underlay"].length === 0) throw err("node.underlay", "must be a non-empty list of {iface, address, prefixLength, gateway?}", v["underlay"]);
  node.underlay = v["underlay"].map((u: unknown, i): UnderlayInterface => {
    const f = `node.underlay[${i}]`;
    if (!isObject(u)) throw err(f, "must be an object {iface, address, prefixLength, gateway?}", u);
    const address = ip(u["address"], `${f}.address`);
    const bits = address.includes(":") ? 128 : 32;
    const len = u["prefixLength"];
    if (typeof len !== "number" || !Number.isInteger(len) || len < 0 || len > bits) throw err(`${f}.prefixLength`, `must be an integer 0-${bits}`, len);
    const out: UnderlayInterface = { iface: str(u["iface"], `${f}.iface`), address, prefixLength: len };
    if (u["gateway"] !== undefined) out.gateway = ip(u["gateway"], `${f}.gateway`);
    if (u["mtu"] !== undefined) {
      if (typeof u["mtu"] !== "number" || !Number.isInteger(u["mtu"]) || u["mtu"] < 576 || u["mtu"] > 65535) throw err(`${f}.mtu`, "must be an integer 576-65535", u["mtu"]);
      out.mtu = u["mtu"];
    }
    return out;
  });
  if (v["labels"] !== undefined) node.labels = stringMap(v["labels"], "node.labels");
  if (v["annotations"] !== undefined) node.annotations = stringMap(v["annotations"], "node.annotations");
  if (v["podCIDRs"] !== undefined) {
    if (!Array.isArray(v["podCIDRs"]) || v["podCIDRs"].some((c) => typeof c !== "string")) throw err("node.podCIDRs", "must be a list of CIDR strings", v["podCIDRs"]);
    node.podCIDRs = [...(v["podCIDRs"] as string[])];
  }
  return node;
}

/** Parses `host:port` or `[v6]:port`. */
export function parseHostPort(v: unknown, field: string): PeerAddress {
  const text = str(v, field);
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:[\]]+):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw err(field, "must be host:port (IPv6 as [addr]:port), e.g. 192.0.2.10:7946", text);
  return { host: m[1]!, port };
}

/** Parses `file:<dir>` or `etcd://host:port[,host:port][/prefix]`. */
export function parseStoreSpec(v: unknown, baseDir: string): StoreSpec {
  if (v === undefined) return { kind: "file", dir: DEFAULT_STORE_DIR };
  const text = str(v, "store");
  if (text.startsWith("file:")) {
    const dir = text.slice(5);
    if (dir === "") throw err("store", "file: needs a directory, e.g. file:/var/lib/cnikit/store", text);
    return { kind: "file", dir: isAbsolute(dir) ? dir : resolvePath(baseDir, dir) };
  }
  const m = /^etcd:\/\/([^/]+)(\/.*)?$/.exec(text);
  const hosts = m?.[1]?.split(",").filter(Boolean) ?? [];
  if (!m || hosts.length === 0 || hosts.some((h) => !/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(h))) {
    throw err("store", "must be file:<dir> or etcd://host:port[,host:port][/prefix]", text);
  }
  const prefix = m[2] === undefined ? "" : `${m[2].replace(/\/+$/, "")}/`;
  return { kind: "etcd", endpoints: hosts.map((h) => `http://${h}`), prefix: prefix === "/" ? "" : prefix };
}

/** The built-in backend called `name` (`flannel` or `@cnikit/flannel`); `ConfigError` (field `backend`) listing the known ones. */
export function resolveBackend(name: unknown): Backend<unknown> {
  const wanted = str(name, "backend");
  const found = builtinBackends.find((b) => b.backend.name === wanted || b.package === wanted || b.package === `@cnikit/${wanted}`);
  if (!found) throw err("backend", `must be one of ${builtinBackends.map((b) => b.backend.name).join(", ")}`, wanted);
  return found.backend;
}

const MODULE_KEYS = new Set(["module", "from", "export"]);

/**
 * Validates `backend` when it is an object (`{module, from?, export?}`), resolving a relative
 * `module` path and `from` against `baseDir`. `ConfigError` naming `backend.<key>`.
 */
export function parseBackendModuleSpec(v: unknown, baseDir: string): BackendModuleSpec {
  if (!isObject(v)) throw err("backend", "must be a built-in backend's name or an object {module, from?, export?}", v);
  return parseModuleSpec(v, baseDir, "backend");
}

/**
 * Validates a module setting `{module, from?, export?}` (plus `extraKeys`) found at `field`,
 * resolving a relative `module` path and `from` against `baseDir`. `ConfigError` naming
 * `<field>.<key>`. Shared by cnikitd's `backend` and cnikit-controller's `backend` and `fabric`.
 */
export function parseModuleSpec(v: Record<string, unknown>, baseDir: string, field: string, extraKeys: readonly string[] = []): BackendModuleSpec {
  const known = [...MODULE_KEYS, ...extraKeys];
  for (const key of Object.keys(v)) if (!known.includes(key)) throw err(`${field}.${key}`, `is not a module setting (known: ${known.join(", ")})`);
  const module = str(v["module"], `${field}.module`);
  const isPath = module.startsWith("/") || module.startsWith("./") || module.startsWith("../");
  const from = v["from"] === undefined ? baseDir : str(v["from"], `${field}.from`);
  const spec: BackendModuleSpec = { module: isPath && !isAbsolute(module) ? resolvePath(baseDir, module) : module, from: isAbsolute(from) ? from : resolvePath(baseDir, from) };
  if (v["export"] !== undefined) {
    const e = str(v["export"], `${field}.export`);
    if (!/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(e)) throw err(`${field}.export`, "must be an export name (a JavaScript identifier)", e);
    spec.export = e;
  }
  return spec;
}

/** Whether `x` has the shape of a Backend (name, capabilities, parseConfig, summarize, createAgent). */
export function looksLikeBackend(x: unknown): x is Backend<unknown> {
  if (x === null || typeof x !== "object") return false;
  const b = x as Record<string, unknown>;
  return (
    typeof b["name"] === "string" &&
    typeof b["parseConfig"] === "function" &&
    typeof b["summarize"] === "function" &&
    typeof b["createAgent"] === "function" &&
    typeof b["capabilities"] === "object" &&
    b["capabilities"] !== null
  );
}

function exportTarget(value: unknown, conditions: readonly string[]): string | undefined {
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    for (const x of value) {
      const t = exportTarget(x, conditions);
      if (t !== undefined) return t;
    }
    return undefined;
  }
  if (isObject(value)) {
    for (const [k, x] of Object.entries(value)) {
      const t = conditions.includes(k) ? exportTarget(x, conditions) : undefined;
      if (t !== undefined) return t;
    }
  }
  return undefined;
}

/**
 * The file a package specifier resolves to from directory `from`, as an ESM import there would:
 * `node_modules` up the tree, `exports` with the import conditions, else `main`, else index.js;
 * then require resolution as a fallback. Undefined when nothing matches.
 */
export function resolvePackageFrom(spec: string, from: string): string | undefined {
  const parts = spec.split("/");
  const n = spec.startsWith("@") ? 2 : 1;
  if (parts.length >= n && parts.slice(0, n).every((p) => p !== "")) {
    const name = parts.slice(0, n).join("/");
    const sub = parts.length > n ? `./${parts.slice(n).join("/")}` : ".";
    for (let dir = resolvePath(from); ; dir = dirname(dir)) {
      const pkgDir = join(dir, "node_modules", name);
      if (existsSync(join(pkgDir, "package.json"))) {
        let pkg: { exports?: unknown; main?: unknown } | undefined;
        try {
          pkg = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8")) as { exports?: unknown; main?: unknown };
        } catch {
          pkg = undefined;
        }
        if (pkg?.exports !== undefined) {
          const e = pkg.exports;
          const map = typeof e === "string" || Array.isArray(e) || (isObject(e) && !Object.keys(e).some((k) => k.startsWith("."))) ? { ".": e } : (e as Record<string, unknown>);
          const target = exportTarget(map[sub], ["import", "node", "module-sync", "default"]);
          if (target !== undefined) return resolvePath(pkgDir, target);
        } else if (pkg) {
          return sub !== "." ? resolvePath(pkgDir, sub) : resolvePath(pkgDir, typeof pkg.main === "string" ? pkg.main : "index.js");
        }
        break;
      }
      if (dirname(dir) === dir) break;
    }
  }
  try {
    return createRequire(join(resolvePath(from), "package.json")).resolve(spec);
  } catch {
    return undefined;
  }
}

/** Loads a module by URL (tests pass their own). */
export type ModuleImporter = (url: string) => Promise<unknown>;

/**
 * Resolves and loads the module a spec names (found at `field` of the config). `ConfigError`
 * naming `<field>.module` when it cannot be resolved or loaded.
 */
export async function importModule(spec: BackendModuleSpec, field: string, importer: ModuleImporter = (u) => import(u)): Promise<Record<string, unknown>> {
  const file = isAbsolute(spec.module) ? spec.module : resolvePackageFrom(spec.module, spec.from);
  if (file === undefined) throw err(`${field}.module`, `cannot resolve the package ${spec.module} from ${spec.from} (install it there, or give an absolute path)`, spec.module);
  try {
    return (await importer(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (e) {
    const code = (e as { code?: unknown } | null)?.code;
    const hint =
      code === "ERR_UNKNOWN_FILE_EXTENSION" || /\.[cm]?ts$/.test(file) ? " (a TypeScript module: compile it to JavaScript and name the .js file, or run cnikitd with a TypeScript loader)" : "";
    throw err(`${field}.module`, `cannot load ${file}: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}${hint}`, spec.module);
  }
}

/**
 * Loads the Backend a module spec names. `ConfigError` naming `backend.module` when the module
 * cannot be resolved or loaded, `backend.export` when the export is missing, not a Backend, or
 * (without `export`) the module has none or several.
 */
export async function importBackendModule(spec: BackendModuleSpec, importer: ModuleImporter = (u) => import(u)): Promise<Backend<unknown>> {
  const mod = await importModule(spec, "backend", importer);
  if (spec.export !== undefined) {
    const picked = mod[spec.export];
    if (!looksLikeBackend(picked)) throw err("backend.export", `${spec.module} has no Backend export named ${spec.export} (exports: ${Object.keys(mod).join(", ") || "none"})`, spec.export);
    return picked;
  }
  const found = [...new Set(Object.values(mod).filter(looksLikeBackend))];
  if (found.length === 1) return found[0]!;
  const names = Object.entries(mod)
    .filter(([, x]) => looksLikeBackend(x))
    .map(([k]) => k);
  throw err(
    "backend.export",
    found.length === 0
      ? `${spec.module} exports nothing that looks like a Backend (exports: ${Object.keys(mod).join(", ") || "none"})`
      : `${spec.module} exports several backends (${names.join(", ")}): name one`,
    spec.export,
  );
}

function readBackendConfig(v: unknown, baseDir: string, readText: (path: string) => string): unknown {
  if (v === undefined || v === null) throw err("backendConfig", "is required: the backend's own config (flannel net-conf.json, Calico resources), inline or a file path");
  if (typeof v !== "string") return v;
  // A path never holds a newline: such a string is the config itself (e.g. Calico YAML inline).
  if (v.includes("\n")) return v;
  const path = isAbsolute(v) ? v : resolvePath(baseDir, v);
  let text: string;
  try {
    text = readText(path);
  } catch (e) {
    throw err("backendConfig", `cannot read ${path}: ${(e as Error).message}`, v);
  }
  if (!path.endsWith(".json")) return text;
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw err("backendConfig", `${path} is not valid JSON: ${(e as Error).message}`, v);
  }
}

/** Options of `parseDaemonConfig`. */
export interface ParseDaemonConfigOptions {
  /** Resolves relative paths (the config file's directory). */
  baseDir: string;
  /** Reads `backendConfig` files (default: the file system). */
  readText?: (path: string) => string;
  /**
   * The Backend a module-valued `backend` names, already loaded (`resolveDaemonConfig` loads it).
   * Without it such a config is refused (`backend`: loading a module is asynchronous).
   */
  moduleBackend?: Backend<unknown>;
}

/** What cnikitd and cnikit-controller configs share: the backend, its config, the store, logging. */
export interface BackendSettings {
  /** The backend's name (`flannel`, `calico`, `reference`, or the name a backend module's Backend has). */
  backend: string;
  /** Set when the backend comes from a module of its own rather than the built-in list. */
  backendModule?: BackendModuleSpec;
  /** The backend's config as read (object or text), already validated by its parser. */
  backendConfig: unknown;
  store: StoreSpec;
  logLevel: LogLevel;
  seed?: number;
}

/**
 * Validates the settings both processes share (`backend`, `backendConfig`, `store`, `logLevel`,
 * `seed`; other keys are the caller's) and returns them with the Backend they name. The backend's
 * config is run through its parser, its errors re-thrown with `backendConfig.` before the field.
 * Throws `ConfigError` naming the field.
 */
export function parseBackendSettings(raw: Record<string, unknown>, options: ParseDaemonConfigOptions): { settings: BackendSettings; backend: Backend<unknown> } {
  const baseDir = options.baseDir;
  const readText = options.readText ?? ((p: string) => readFileSync(p, "utf8"));
  let backendModule: BackendModuleSpec | undefined;
  let backend: Backend<unknown>;
  if (typeof raw["backend"] === "string" || raw["backend"] === undefined) backend = resolveBackend(raw["backend"]);
  else {
    backendModule = parseBackendModuleSpec(raw["backend"], baseDir);
    if (!options.moduleBackend) throw err("backend", "names a backend module, which must be loaded first (resolveDaemonConfig / loadDaemonConfig load it)", raw["backend"]);
    backend = options.moduleBackend;
  }
  const backendConfig = readBackendConfig(raw["backendConfig"], baseDir, readText);
  try {
    backend.parseConfig(backendConfig);
  } catch (e) {
    // Duck-typed: a backend module brings its own copy of @cnikit/core, and its ConfigError class.
    const ce = e as { code?: unknown; field?: unknown; rule?: unknown; value?: unknown; message?: unknown } | null;
    if (ce?.code === 7 && typeof ce.field === "string") {
      throw new ConfigError({ component: C, field: `backendConfig.${ce.field}`, rule: typeof ce.rule === "string" ? ce.rule : String(ce.message), value: ce.value, cause: e });
    }
    throw e;
  }
  const settings: BackendSettings = { backend: backend.name, ...(backendModule ? { backendModule } : {}), backendConfig, store: parseStoreSpec(raw["store"], baseDir), logLevel: "info" };
  if (raw["logLevel"] !== undefined) {
    const l = raw["logLevel"];
    if (l !== "debug" && l !== "info" && l !== "warn" && l !== "error") throw err("logLevel", "must be debug, info, warn or error", l);
    settings.logLevel = l;
  }
  if (raw["seed"] !== undefined) {
    if (typeof raw["seed"] !== "number" || !Number.isInteger(raw["seed"])) throw err("seed", "must be an integer", raw["seed"]);
    settings.seed = raw["seed"];
  }
  return { settings, backend };
}

/**
 * Validates a parsed config file (see the module comment). `baseDir` resolves relative paths;
 * `readText` reads `backendConfig` files (default: the file system). The backend's config is run
 * through the backend's parser, its errors re-thrown with `backendConfig.` before the field.
 * Throws `ConfigError` naming the field. Pure apart from `readText`. A `backend` naming a module
 * needs that module loaded first: use `resolveDaemonConfig` (or pass `moduleBackend`).
 */
export function parseDaemonConfig(raw: unknown, options: ParseDaemonConfigOptions): DaemonConfig {
  if (!isObject(raw)) throw err("(root)", "must be a JSON object", raw);
  for (const key of Object.keys(raw)) if (!TOP_KEYS.has(key)) throw err(key, `is not a cnikitd setting (known: ${[...TOP_KEYS].join(", ")})`);
  const baseDir = options.baseDir;
  const node = parseNode(raw["node"]);
  const { settings } = parseBackendSettings(raw, options);
  const path = (v: unknown, field: string, dflt: string): string => {
    if (v === undefined) return dflt;
    const p = str(v, field);
    return isAbsolute(p) ? p : resolvePath(baseDir, p);
  };
  const defaults = daemonDefaults(node.name);
  const config: DaemonConfig = {
    node,
    ...settings,
    ...(raw["store"] === undefined ? { store: { kind: "file", dir: defaults.storeDir } } : {}),
    localStateDir: path(raw["localStateDir"], "localStateDir", defaults.localStateDir),
    socketPath: path(raw["socketPath"], "socketPath", defaults.socketPath),
    renderer: { type: "none", options: {} },
  };
  if (config.store.kind === "file" && resolvePath(config.store.dir) === resolvePath(config.localStateDir)) {
    throw err("localStateDir", "must differ from the file store's directory (each directory is opened by one store)", config.localStateDir);
  }
  if (raw["peers"] !== undefined) {
    const p = raw["peers"];
    if (!isObject(p)) throw err("peers", "must be an object {listen, advertise?}", p);
    config.peers = { listen: parseHostPort(p["listen"], "peers.listen") };
    if (p["advertise"] !== undefined) config.peers.advertise = parseHostPort(p["advertise"], "peers.advertise");
  }
  const r = raw["renderer"];
  if (r === undefined) {
    throw err(
      "renderer",
      'is required, so that nothing acts on the host unasked: {"type": "linux", "netns": "<name>"} renders into a named network namespace, {"type": "linux"} into cnikitd\'s own (on a node: the host\'s, with the backend\'s NAT), {"type": "none"} only records the dataplane',
    );
  }
  if (!isObject(r)) throw err("renderer", "must be an object {type: linux|none, ...}", r);
  const type = r["type"];
  if (type !== "linux" && type !== "none") throw err("renderer.type", "must be linux or none", type);
  const { type: _type, ...rest } = r;
  if (type === "linux") rest["stateDir"] = rest["stateDir"] === undefined ? defaults.rendererStateDir : path(rest["stateDir"], "renderer.stateDir", defaults.rendererStateDir);
  config.renderer = { type, options: rest };
  if (raw["localFsync"] !== undefined) {
    if (typeof raw["localFsync"] !== "boolean") throw err("localFsync", "must be true or false", raw["localFsync"]);
    config.localFsync = raw["localFsync"];
  }
  return config;
}

/**
 * `parseDaemonConfig`, first loading the backend module a module-valued `backend` names
 * (`importBackendModule`). `ConfigError` naming the field, `backend.module` / `backend.export`
 * for a module that cannot be loaded or has no such Backend.
 */
export async function resolveDaemonConfig(raw: unknown, options: Omit<ParseDaemonConfigOptions, "moduleBackend"> & { importer?: ModuleImporter }): Promise<DaemonConfig> {
  const spec = isObject(raw) && isObject(raw["backend"]) ? parseBackendModuleSpec(raw["backend"], options.baseDir) : undefined;
  const moduleBackend = spec ? await importBackendModule(spec, options.importer) : undefined;
  return parseDaemonConfig(raw, { baseDir: options.baseDir, ...(options.readText ? { readText: options.readText } : {}), ...(moduleBackend ? { moduleBackend } : {}) });
}

/** The Backend a validated config runs: the built-in one, or the one its module exports. */
export async function daemonBackend(config: Pick<BackendSettings, "backend" | "backendModule">, importer?: ModuleImporter): Promise<Backend<unknown>> {
  return config.backendModule ? importBackendModule(config.backendModule, importer) : resolveBackend(config.backend);
}

/**
 * Reads and validates a config file, loading a backend module it names (`ConfigError` field
 * `--config` when it cannot be read or is not JSON).
 */
export async function loadDaemonConfig(file: string): Promise<DaemonConfig> {
  return resolveDaemonConfig(readConfigFile(file), { baseDir: dirname(resolvePath(file)) });
}

/** Opens the cluster store a spec names (a file store, or etcd). */
export async function openClusterStore(spec: StoreSpec, clock: RealClock): Promise<Datastore> {
  return spec.kind === "file" ? FileDatastore.open({ dir: spec.dir, clock }) : EtcdDatastore.open({ endpoints: spec.endpoints, prefix: spec.prefix });
}

/** Reads a JSON config file (`ConfigError` field `--config` when it cannot be read or is not JSON). */
export function readConfigFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw err("--config", `cannot read ${file}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw err("--config", `${file} is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * Makes the applier a renderer spec asks for. `userspace`: the backend's userspace datapath
 * (core `Backend.userspaceDatapath`), when it has one, for links the kernel has no device for.
 */
export type ApplierFactory = (spec: RendererSpec, context: { node: NodeInfo; log: Logger; userspace?: UserspaceDatapath }) => Promise<DataplaneApplier>;

/**
 * The default factory: `none` → RecordingApplier; `linux` → @cnikit/linux's LinuxRenderer with the
 * `renderer` object's other keys as its options (`netns`, `owner`, `stateDir`, ...; without `netns`
 * it renders into cnikitd's own namespace, the node's) and the backend's userspace datapath.
 */
export const defaultApplierFactory: ApplierFactory = async (spec, context) => {
  if (spec.type === "none") return new RecordingApplier();
  const linux = (await import("@cnikit/linux")) as Record<string, unknown>;
  const Renderer = linux["LinuxRenderer"] as (new (options: Record<string, unknown>) => DataplaneApplier) | undefined;
  if (typeof Renderer !== "function") throw err("renderer.type", "linux: @cnikit/linux does not provide LinuxRenderer in this build", spec.type);
  return new Renderer({ log: context.log, ...spec.options, ...(context.userspace ? { userspace: context.userspace } : {}) });
};

/** How often cnikitd logs its userspace datapath's status lines. */
export const USERSPACE_STATUS_LOG_MS = 60_000;

/** Options of `openPeerTransport`. */
export interface OpenPeerTransportOptions {
  /** The cluster store: peers are found under `/cnikit/daemons/<node>`, and this node published there. */
  store: Datastore;
  node: NodeInfo;
  listen: PeerAddress;
  /** The address other nodes dial (default: the bound address; the first underlay address when bound to 0.0.0.0 / ::). */
  advertise?: PeerAddress;
  log: Logger;
}

/**
 * Starts a `TcpPeerTransport` for `node` that finds peers through the cluster store
 * (`/cnikit/daemons/<peer>` = `{host, port}`) and publishes its own address there (retried in the
 * background with back-off while the store is unavailable). `close()` stops both. Throws
 * `AddressInUseError` when the listen address is taken.
 */
export async function openPeerTransport(options: OpenPeerTransportOptions): Promise<{ transport: TcpPeerTransport; address: PeerAddress; close(): void }> {
  const { store, node, log } = options;
  const transport = new TcpPeerTransport({
    self: node.name,
    listen: options.listen,
    resolve: async (peer) => {
      const kv = await store.get(`${DAEMON_PREFIX}${peer}`);
      if (!kv) throw new Error(`no ${DAEMON_PREFIX}${peer} in the cluster store (is cnikitd running there?)`);
      return JSON.parse(kv.value) as PeerAddress;
    },
  });
  const bound = await transport.start();
  const unspecified = isAddress(bound.host) && addressRange(bound.host) === "unspecified";
  const address = options.advertise ?? { host: unspecified ? (node.underlay[0]?.address ?? bound.host) : bound.host, port: bound.port };
  const value = JSON.stringify(address);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;
  const publish = (delay: number): Promise<void> =>
    store.put(`${DAEMON_PREFIX}${node.name}`, value).then(
      () => log.info("peer address published", { ...address }),
      (e: unknown) => {
        if (closed) return;
        log.warn("could not publish the peer address yet", { error: e, retryInMs: delay });
        timer = setTimeout(() => void publish(Math.min(delay * 2, 30_000)), delay);
        timer.unref();
      },
    );
  await publish(500);
  return {
    transport,
    address,
    close: () => {
      closed = true;
      clearTimeout(timer);
      transport.close();
    },
  };
}

/** A daemon assembled from a config, with everything it opened. */
export interface RunningDaemon {
  daemon: CniDaemon;
  store: Datastore;
  local: Datastore;
  peers: PeerTransport;
  /** The peer address published under `/cnikit/daemons/<node>` (when `peers` is configured). */
  peerAddress?: PeerAddress;
  /**
   * The backend's userspace datapath (weave's sleeve) when it has one and the renderer is `linux`:
   * it runs in this process (its devices go with it) and is stopped by `stop()`.
   */
  userspace?: UserspaceDatapath;
  log: Logger;
  /** Stops the daemon (dataplane left in place), then closes the transport and the stores. Idempotent. */
  stop(): Promise<void>;
}

/** Options of `runDaemon`. */
export interface RunDaemonOptions {
  /** Replaces the renderer the config names (tests: a fake). */
  applier?: DataplaneApplier;
  applierFactory?: ApplierFactory;
  log?: Logger;
  /** Passed to CniDaemon. */
  agentWaitMs?: number;
}

/**
 * Opens what `config` names (local store, cluster store, TCP peer transport publishing its address
 * under `/cnikit/daemons/<node>`, renderer), starts a `CniDaemon` on the socket and returns at once
 * (the agent starts in the background: `daemon.agentStarted`). On failure everything opened so far
 * is closed again and the error thrown (`ConfigError` for the socket or a taken port, `IoError`
 * for a store directory that cannot be opened).
 */
export async function runDaemon(config: DaemonConfig, options: RunDaemonOptions = {}): Promise<RunningDaemon> {
  const log = options.log ?? createLogger({ name: `cnikitd/${config.node.name}`, level: config.logLevel });
  const clock = new RealClock();
  const cleanups: (() => Promise<void> | void)[] = [];
  const cleanup = async () => {
    for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch(() => undefined);
  };
  try {
    const local = await FileDatastore.open({ dir: config.localStateDir, clock, fsync: config.localFsync ?? false });
    cleanups.push(() => local.close());
    const store = await openClusterStore(config.store, clock);
    cleanups.push(() => store.close());
    let peers: PeerTransport;
    let peerAddress: PeerAddress | undefined;
    if (config.peers) {
      const opened = await openPeerTransport({ store, node: config.node, listen: config.peers.listen, ...(config.peers.advertise ? { advertise: config.peers.advertise } : {}), log });
      cleanups.push(() => opened.close());
      peerAddress = opened.address;
      peers = opened.transport;
    } else {
      peers = new MemoryNetwork({ clock }).transport(config.node.name);
      cleanups.push(() => peers.close());
    }
    const backend = await daemonBackend(config);
    // The backend's userspace datapath (links the kernel has no device for) lives in this process
    // and goes with it: stopped (its helpers by PID) after the daemon, before the stores close.
    let userspace: UserspaceDatapath | undefined;
    if (backend.userspaceDatapath && config.renderer.type === "linux") {
      const made = backend.userspaceDatapath({ config: backend.parseConfig(config.backendConfig), node: config.node, log });
      const netns = config.renderer.options["netns"];
      // Its devices are made in this process's namespace: a renderer aimed at another one could
      // not configure them, so a link that needs one is refused there, naming the field.
      const datapath: UserspaceDatapath =
        typeof netns === "string"
          ? {
              kinds: made.kinds,
              ensure: (link) =>
                Promise.reject(
                  err(
                    "renderer.netns",
                    `must be absent for a ${link.kind} link (${link.name}): the ${backend.name} backend runs it in userspace, in cnikitd's own namespace; run cnikitd inside ${netns} (ip netns exec) with a renderer without netns`,
                    netns,
                  ),
                ),
              setFdb: (name, entries) => made.setFdb(name, entries),
              has: (name) => made.has(name),
              remove: (name) => made.remove(name),
              status: () => made.status(),
              stop: () => made.stop(),
            }
          : made;
      userspace = datapath;
      cleanups.push(() => datapath.stop());
      const timer = setInterval(() => {
        for (const line of datapath.status()) log.info("userspace datapath", { status: line });
      }, USERSPACE_STATUS_LOG_MS);
      timer.unref();
      cleanups.push(() => clearInterval(timer));
    }
    const applier = options.applier ?? (await (options.applierFactory ?? defaultApplierFactory)(config.renderer, { node: config.node, log, ...(userspace ? { userspace } : {}) }));
    const daemon = new CniDaemon({
      backend,
      backendConfig: config.backendConfig,
      node: config.node,
      store,
      local,
      peers,
      applier,
      socketPath: config.socketPath,
      clock,
      log,
      random: seededRandom(config.seed ?? seedFromString(config.node.name)),
      ...(options.agentWaitMs !== undefined ? { agentWaitMs: options.agentWaitMs } : {}),
    });
    try {
      await daemon.start();
    } catch (e) {
      await applier.close?.().catch(() => undefined);
      throw e;
    }
    let stopped: Promise<void> | undefined;
    return {
      daemon,
      store,
      local,
      peers,
      ...(peerAddress ? { peerAddress } : {}),
      ...(userspace ? { userspace } : {}),
      log,
      stop: () => {
        stopped ??= (async () => {
          await daemon.stop();
          await cleanup();
        })();
        return stopped;
      },
    };
  } catch (e) {
    await cleanup();
    throw e;
  }
}
