/**
 * cnikit-controller: runs a backend's cluster-level controller (`Backend.createController`) once
 * per cluster, outside the nodes, against the same cluster store the nodes' cnikitd use.
 *
 * ```json
 * {
 *   "backend": "my-backend" | { "module": "./my-backend.js", "from"?: "...", "export"?: "..." },
 *   "backendConfig": { ... },                 // as cnikitd's (inline, or a file path)
 *   "store": "etcd://10.0.0.2:2379",         // as cnikitd's (default file:/var/lib/cnikit/store)
 *   "fabric": "store",                         // default: record intents under /cnikit/fabric/
 *             | { "module": "./azure-fabric.js", "export"?: "createFabricPort", "options": { ... } },
 *   "logLevel": "info", "seed": 1, "membersResyncMs": 300000
 * }
 * ```
 *
 * Membership comes from the Node objects mirrored under `KUBE_PREFIX.nodes` (core's
 * `watchStoreMembership`). The fabric port is pluggable: the default `StoreFabricPort` (core) logs
 * each intent and records it in the store, where a real cloud adapter follows it and where the
 * nodes' membership picks up their secondary addresses; a fabric module exports a
 * `FabricPortFactory` (default export name `createFabricPort`) that programs a cloud directly.
 * Config parsing, module loading and store opening are cnikitd's (daemon-config.ts).
 */
import { dirname, resolve as resolvePath } from "node:path";
import { ConfigError, RealClock, StoreFabricPort, createLogger, seedFromString, seededRandom, watchStoreMembership } from "@cnikit/core";
import type { ClusterController, Datastore, FabricPort, Logger, Membership } from "@cnikit/core";
import {
  daemonBackend,
  importModule,
  importBackendModule,
  openClusterStore,
  parseBackendModuleSpec,
  parseBackendSettings,
  parseModuleSpec,
  readConfigFile,
  type BackendModuleSpec,
  type BackendSettings,
  type ModuleImporter,
} from "./daemon-config.ts";

const C = "cnikit-controller";
const TOP_KEYS = new Set(["backend", "backendConfig", "store", "fabric", "logLevel", "seed", "membersResyncMs"]);

/** What a fabric module's factory is given. */
export interface FabricPortContext {
  store: Datastore;
  members: Membership;
  log: Logger;
  /** The `fabric.options` object of the config (the adapter's own settings). */
  options: Record<string, unknown>;
}

/** What a fabric module exports (default name `createFabricPort`). */
export type FabricPortFactory = (context: FabricPortContext) => FabricPort | Promise<FabricPort>;

export type FabricSpec = { kind: "store" } | { kind: "module"; spec: BackendModuleSpec; options: Record<string, unknown> };

export interface ControllerConfig extends BackendSettings {
  fabric: FabricSpec;
  /** Re-list period of the membership (default 300000 ms). */
  membersResyncMs?: number;
}

function err(field: string, rule: string, value?: unknown): ConfigError {
  return new ConfigError({ component: C, field, rule, ...(value === undefined ? {} : { value }) });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Errors of the shared parsing say cnikitd; here they are the controller's (same field, same rule). */
function asController<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    const ce = e as { code?: unknown; field?: unknown; rule?: unknown; value?: unknown } | null;
    if (ce?.code === 7 && typeof ce.field === "string" && typeof ce.rule === "string") throw new ConfigError({ component: C, field: ce.field, rule: ce.rule, value: ce.value, cause: e });
    throw e;
  }
}

/**
 * Validates a parsed controller config (see the module comment). A module-valued `backend` must
 * be loaded first (`resolveControllerConfig`). Throws `ConfigError` naming the field.
 */
export function parseControllerConfig(raw: unknown, options: { baseDir: string; readText?: (path: string) => string; moduleBackend?: import("@cnikit/core").Backend<unknown> }): ControllerConfig {
  if (!isObject(raw)) throw err("(root)", "must be a JSON object", raw);
  for (const key of Object.keys(raw)) if (!TOP_KEYS.has(key)) throw err(key, `is not a cnikit-controller setting (known: ${[...TOP_KEYS].join(", ")})`);
  const { settings, backend } = asController(() => parseBackendSettings(raw, options));
  if (typeof backend.createController !== "function")
    throw err("backend", `${backend.name} has no cluster-level controller (Backend.createController): it needs no cnikit-controller`, settings.backend);
  let fabric: FabricSpec = { kind: "store" };
  const f = raw["fabric"];
  if (f !== undefined && f !== "store") {
    if (!isObject(f)) throw err("fabric", 'must be "store" or an object {module, from?, export?, options?}', f);
    const spec = asController(() => parseModuleSpec(f, options.baseDir, "fabric", ["options"]));
    const opts = f["options"] ?? {};
    if (!isObject(opts)) throw err("fabric.options", "must be an object (the fabric adapter's settings)", opts);
    fabric = { kind: "module", spec, options: { ...opts } };
  }
  const config: ControllerConfig = { ...settings, fabric };
  if (raw["membersResyncMs"] !== undefined) {
    const ms = raw["membersResyncMs"];
    if (typeof ms !== "number" || !Number.isInteger(ms) || ms < 1000) throw err("membersResyncMs", "must be an integer >= 1000 (milliseconds)", ms);
    config.membersResyncMs = ms;
  }
  return config;
}

/** `parseControllerConfig`, loading a module-valued `backend` first. */
export async function resolveControllerConfig(raw: unknown, options: { baseDir: string; readText?: (path: string) => string; importer?: ModuleImporter }): Promise<ControllerConfig> {
  const spec = isObject(raw) && isObject(raw["backend"]) ? asController(() => parseBackendModuleSpec(raw["backend"], options.baseDir)) : undefined;
  const moduleBackend = spec ? await asControllerAsync(() => importBackendModule(spec, options.importer)) : undefined;
  return parseControllerConfig(raw, { baseDir: options.baseDir, ...(options.readText ? { readText: options.readText } : {}), ...(moduleBackend ? { moduleBackend } : {}) });
}

async function asControllerAsync<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    return asController(() => {
      throw e;
    });
  }
}

/** Reads and validates a controller config file (`ConfigError` field `--config` when unreadable). */
export async function loadControllerConfig(file: string): Promise<ControllerConfig> {
  const raw = asController(() => readConfigFile(file));
  return resolveControllerConfig(raw, { baseDir: dirname(resolvePath(file)) });
}

/** Loads a fabric module's factory. `ConfigError` naming `fabric.module` or `fabric.export`. */
export async function importFabricModule(spec: BackendModuleSpec, importer?: ModuleImporter): Promise<FabricPortFactory> {
  const mod = await asControllerAsync(() => importModule(spec, "fabric", importer));
  const name = spec.export ?? "createFabricPort";
  const factory = mod[name];
  if (typeof factory !== "function") throw err("fabric.export", `${spec.module} has no function export named ${name} (exports: ${Object.keys(mod).join(", ") || "none"})`, name);
  return factory as FabricPortFactory;
}

/** A controller assembled from a config, with everything it opened. */
export interface RunningController {
  controller: ClusterController;
  store: Datastore;
  members: Membership;
  fabric: FabricPort;
  log: Logger;
  /** Stops the controller (what it programmed stays), ends the membership watch, closes the store. Idempotent. */
  stop(): Promise<void>;
}

export interface RunControllerOptions {
  log?: Logger;
  /** Replaces the fabric port the config names (tests). */
  fabric?: FabricPort;
  importer?: ModuleImporter;
}

/**
 * Opens the store, follows the membership, builds the fabric port and the backend's controller,
 * and resolves once `controller.start()` did (its first reconcile). On failure everything opened
 * is closed again and the error thrown.
 */
export async function runController(config: ControllerConfig, options: RunControllerOptions = {}): Promise<RunningController> {
  const log = options.log ?? createLogger({ name: C, level: config.logLevel });
  const clock = new RealClock();
  const abort = new AbortController();
  const store = await openClusterStore(config.store, clock);
  try {
    const backend = await daemonBackend(config, options.importer);
    if (!backend.createController) throw err("backend", `${backend.name} has no cluster-level controller`, config.backend);
    const members = await watchStoreMembership({
      store,
      clock,
      signal: abort.signal,
      resyncMs: config.membersResyncMs ?? 300_000,
      onError: (e, key) => log.warn(key ? "a mirrored Node object does not parse; left out of the membership" : "the membership watch failed; re-listing", { error: e, ...(key ? { key } : {}) }),
    });
    const fabric =
      options.fabric ??
      (config.fabric.kind === "store"
        ? new StoreFabricPort({ store, members, log })
        : await (
            await importFabricModule(config.fabric.spec, options.importer)
          )({ store, members, log, options: config.fabric.options }));
    const controller = backend.createController({
      config: backend.parseConfig(config.backendConfig),
      store,
      members,
      fabric,
      clock,
      log,
      random: seededRandom(config.seed ?? seedFromString(`${C}/${process.pid}/${Date.now()}`)),
    });
    await controller.start();
    let stopped: Promise<void> | undefined;
    return {
      controller,
      store,
      members,
      fabric,
      log,
      stop: () => {
        stopped ??= (async () => {
          await controller.stop().catch((e: unknown) => log.warn("controller stop failed", { error: e }));
          abort.abort();
          await store.close();
        })();
        return stopped;
      },
    };
  } catch (e) {
    abort.abort();
    await store.close().catch(() => undefined);
    throw e;
  }
}
