/**
 * A libcni-like CNI runtime: what a container runtime (containerd, CRI-O) does with a conflist.
 * It finds each plugin in the CNI path, agrees on a CNI version with all of them, runs ADD in list
 * order chaining `prevResult`, caches the final result on disk, runs DEL in reverse order and CHECK
 * in order with the cached result, STATUS (1.1.0+) until the first failure, and GC (DEL of stale
 * cached attachments, then GC of every plugin at 1.1.0+). See DESIGN.md "The CNI rules"
 * section 4 and checklist items 37-48 and 62.
 *
 * Version negotiation (checklist 42, 62): a list offers `cniVersions` and/or `cniVersion`; the
 * runtime asks every plugin for VERSION (answers cached per executable until it changes on disk)
 * and runs the list at the highest offered version that the runtime and every plugin support. A list
 * offering only 1.1.0 with Debian bookworm's plugins (which stop at 1.0.0) is refused with a
 * `VersionError` naming the plugins; offering `"cniVersions": ["1.0.0", "1.1.0"]` runs at 1.0.0
 * there and at 1.1.0 with plugins that have it.
 *
 * Failed ADD (checklist 48): `add` does not clean up. As the spec says, the caller must issue DEL
 * for an attachment whose ADD failed; `addOrCleanup` does exactly that.
 *
 * Concurrency (checklist 47): calls on one container id are serialized (FIFO); calls on different
 * containers run in parallel; GC waits for running calls and holds new ones back until done. Across
 * processes sharing a cache directory, ADD, DEL and CHECK of one container id — and GC's DEL of a
 * stale one — also hold that container's lock file (`FileLocks`, runtime-lock.ts), so two runtimes
 * cannot interleave an ADD and a DEL of one attachment; a lock left by a dead process is taken over.
 * GC's exclusion of every other call is per `CniRuntime` only.
 */
import { access, stat } from "node:fs/promises";
import { constants as fsConstants } from "node:fs";
import { join, isAbsolute } from "node:path";
import { CniCode, CniError, ConfigError, DecodeError, UnknownContainerError, VersionError } from "@cnikit/core";
import { compareVersions, formatResult, isSupportedVersion, parsePrevResult, SUPPORTED_VERSIONS, validateContainerId, validateIfName } from "./protocol.ts";
import type { CniDns, CniInterface, CniIpConfig, CniRoute } from "./protocol.ts";
import { ResultCache, type CachedAttachment } from "./runtime-cache.ts";
import { pluginConfig, type NetworkConfigList, type PluginConf } from "./runtime-config.ts";
import { parsePluginError, PluginError, spawnExec, type PluginExec, type PluginOutput } from "./runtime-exec.ts";
import { FileLocks, KeyedMutex, SharedExclusiveGate } from "./runtime-lock.ts";

export { loadConfList, pluginConfig, type InjectOptions, type NetworkConfigList, type PluginConf } from "./runtime-config.ts";
export { netnsWrapper, parsePluginError, PluginError, spawnExec, type PluginExec, type PluginInvocation, type PluginOutput, type SpawnExecOptions } from "./runtime-exec.ts";
export { CACHE_KIND, ResultCache, type AttachmentKey, type CachedAttachment } from "./runtime-cache.ts";
export { FileLocks, currentLockOwner, lockOwnerAlive, type FileLocksOptions, type LockOwner } from "./runtime-lock.ts";

const COMPONENT = "cni-runtime";

/** The highest CNI version this runtime speaks (and sends to plugins on VERSION). */
export const RUNTIME_CNI_VERSION = "1.1.0";

/** One container's attachment to a network: what libcni calls RuntimeConf. */
export interface RuntimeConf {
  /** CNI_CONTAINERID: `^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`. */
  containerId: string;
  /** CNI_NETNS: path of the pod's network namespace (`/var/run/netns/<name>`); required for ADD and CHECK. */
  netns: string;
  /** CNI_IFNAME: the interface to create in the pod (at most 15 bytes, no `/`, `:` or spaces). */
  ifName: string;
  /** CNI_ARGS as pairs, e.g. [["K8S_POD_NAMESPACE", "default"], ["K8S_POD_NAME", "web-0"]]. */
  args?: [string, string][];
  /** Capability arguments (portMappings, ipRanges, bandwidth, dns, ips, mac, ...); each plugin gets those it declares. */
  capabilityArgs?: Record<string, unknown>;
  /** Overrides the runtime's CNI path for this call. */
  cniPath?: string[];
  /** Overrides the runtime's cache directory for this call. */
  cacheDir?: string;
}

/** `CniRuntime`'s options. */
export interface CniRuntimeOptions {
  /** Directories searched, in order, for plugin executables (CNI_PATH), e.g. ["/usr/lib/cni"]. */
  cniPath: string[];
  /** Directory of the result cache (libcni: /var/lib/cni). Absolute. */
  cacheDir: string;
  /** How plugins are run; default `spawnExec()` (no shell, no wrapper). */
  exec?: PluginExec;
  /** Kill a plugin that runs longer than this (ms); default 60 000. */
  timeoutMs?: number;
  /** Base environment of the plugins (default `process.env`); any CNI_* in it is dropped. */
  env?: Readonly<Record<string, string | undefined>>;
  /**
   * How long a call waits for another process holding the container's lock file before failing
   * with 11 (ms); default twice `timeoutMs`. A dead holder's lock is taken over at once.
   */
  lockTimeoutMs?: number;
}

/** A plugin's answer to VERSION. */
export interface PluginVersionInfo {
  cniVersion: string;
  supportedVersions: string[];
}

/**
 * A result as the runtime returns it: the JSON of the version the list ran at. For 0.3.0 and later
 * it has `interfaces`, `ips`, `routes`, `dns`; 0.1.0/0.2.0 results have `ip4`/`ip6` instead.
 */
export interface CniResultJson {
  cniVersion: string;
  interfaces?: CniInterface[];
  ips?: (CniIpConfig & { version?: string })[];
  routes?: CniRoute[];
  dns?: CniDns;
  [key: string]: unknown;
}

/** What STATUS found. */
export interface StatusReport {
  /** The version the list runs at. */
  cniVersion: string;
  /** True when the version is below 1.1.0, so no plugin was asked (libcni answers "ready" then). */
  skipped: boolean;
}

/** One attachment a GC caller still wants (the spec's `{containerID, ifname}`). */
export interface ValidAttachment {
  containerId: string;
  ifName: string;
}

/** What GC did. */
export interface GcReport {
  /** Stale cached attachments that were deleted. */
  deleted: ValidAttachment[];
  /** Whether the plugins were sent GC (only at 1.1.0 and later). */
  pluginsCollected: boolean;
  /** True when the list has `disableGC` (nothing was done). */
  disabled: boolean;
}

/** GC ran to the end but some steps failed; `errors` has each one (GC continues past failures). */
export class GcError extends CniError {
  readonly errors: CniError[];
  constructor(network: string, errors: CniError[]) {
    const first = errors[0]!;
    super(first.code, `[${COMPONENT}] network ${JSON.stringify(network)}: GC had ${errors.length} failure(s): ${errors.map((e) => e.message).join("; ")}`, { cause: first });
    this.errors = errors;
  }
}

/** ADD failed, and so did the DEL that `addOrCleanup` issued after it. Carries both. */
export class AddCleanupError extends CniError {
  readonly addError: CniError;
  readonly cleanupError: CniError;
  constructor(addError: CniError, cleanupError: CniError) {
    super(addError.code, `${addError.message}; the DEL issued after the failed ADD failed too: ${cleanupError.message}`, {
      ...(addError.details !== undefined ? { details: addError.details } : {}),
      cause: addError,
    });
    this.addError = addError;
    this.cleanupError = cleanupError;
  }
}

interface Where {
  cniPath: string[];
  cache: ResultCache;
  /** The cross-process locks of this cache directory (`<cacheDir>/locks`). */
  locks: FileLocks;
}

interface Prepared {
  version: string;
  paths: string[];
}

interface VersionCacheEntry {
  stamp: string;
  info: Promise<PluginVersionInfo>;
}

function versionLt(a: string, b: string): boolean {
  return compareVersions(a, b) < 0;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * The runtime. One instance per cache directory; safe to call concurrently (see the module
 * comment for how calls are serialized).
 */
export class CniRuntime {
  private readonly options: CniRuntimeOptions;
  private readonly exec: PluginExec;
  private readonly timeoutMs: number;
  private readonly baseEnv: Record<string, string>;
  private readonly containers = new KeyedMutex();
  private readonly gate = new SharedExclusiveGate();
  private readonly versions = new Map<string, VersionCacheEntry>();

  /** Throws `ConfigError` (7) for an empty `cniPath` or a relative `cacheDir`. */
  constructor(options: CniRuntimeOptions) {
    checkWhere(options.cniPath, options.cacheDir, "");
    this.options = options;
    this.exec = options.exec ?? spawnExec();
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.baseEnv = {};
    for (const [k, v] of Object.entries(options.env ?? process.env)) {
      if (v !== undefined && !k.startsWith("CNI_")) this.baseEnv[k] = v;
    }
  }

  /**
   * ADD: runs every plugin's ADD in list order, each getting the previous one's result as
   * `prevResult` (the first gets none), then caches the final result and returns it in the shape of
   * the negotiated version. Not idempotent (a second ADD of the same attachment is the plugins'
   * business: most refuse it). On failure nothing is cleaned up: the caller must DEL (or use
   * `addOrCleanup`). Serialized per container id. Throws `ConfigError` (7) for a bad RuntimeConf or
   * a plugin not in the CNI path, `VersionError` (1) when no version is common to all plugins,
   * `PluginError` (the plugin's code) naming the plugin that failed, `IoError` (5) when the cache
   * cannot be written.
   */
  async add(list: NetworkConfigList, rt: RuntimeConf): Promise<CniResultJson> {
    const where = this.where(rt, "ADD");
    return this.containers.run(rt.containerId, () => this.gate.withShared(() => where.locks.run(rt.containerId, () => this.addLocked(list, rt, where, { started: false }))));
  }

  /**
   * ADD, and when it fails after any plugin ran, DEL of the same attachment before rethrowing (the
   * spec: every ADD is followed by DEL even if it failed). Both run under one hold of the container's
   * lock. Throws the ADD's error, or `AddCleanupError` carrying both when the DEL failed too.
   */
  async addOrCleanup(list: NetworkConfigList, rt: RuntimeConf): Promise<CniResultJson> {
    const where = this.where(rt, "ADD");
    return this.containers.run(rt.containerId, () =>
      this.gate.withShared(() =>
        where.locks.run(rt.containerId, async () => {
          const state = { started: false };
          try {
            return await this.addLocked(list, rt, where, state);
          } catch (err) {
            if (!state.started) throw err;
            try {
              await this.delLocked(list, rt, where);
            } catch (cleanup) {
              throw new AddCleanupError(CniError.from(err), CniError.from(cleanup));
            }
            throw err;
          }
        }),
      ),
    );
  }

  /**
   * DEL: runs every plugin's DEL in reverse list order, each getting the cached ADD result as
   * `prevResult` (for 0.4.0 and later, when there is one), then drops the cached result. Works
   * without a cached result and after a failed ADD; a second DEL succeeds as long as the plugins'
   * DEL is idempotent (the spec requires it). `netns` may be empty (the namespace is gone). Stops at
   * the first failing plugin and keeps the cache, so a retry has the same `prevResult`. Serialized
   * per container id. Throws `ConfigError`, `VersionError`, `PluginError` as `add` does.
   */
  async del(list: NetworkConfigList, rt: RuntimeConf): Promise<void> {
    const where = this.where(rt, "DEL");
    await this.containers.run(rt.containerId, () => this.gate.withShared(() => where.locks.run(rt.containerId, () => this.delLocked(list, rt, where))));
  }

  /**
   * CHECK: runs every plugin's CHECK in list order with the cached ADD result as `prevResult`.
   * Does nothing when the list has `disableCheck`. Throws `VersionError` (1) below 0.4.0,
   * `UnknownContainerError` (3) when there is no cached result (no successful ADD), `PluginError`
   * for the first plugin that reports a problem, `ConfigError` as `add` does. Read-only for the
   * runtime; serialized per container id.
   */
  async check(list: NetworkConfigList, rt: RuntimeConf): Promise<void> {
    if (list.disableCheck) return;
    const where = this.where(rt, "CHECK");
    await this.containers.run(rt.containerId, () =>
      this.gate.withShared(() =>
        where.locks.run(rt.containerId, async () => {
          const prepared = await this.prepare(list, where);
          if (versionLt(prepared.version, "0.4.0")) {
            throw new VersionError(`[${COMPONENT}] network ${JSON.stringify(list.name)}: configuration version "${prepared.version}" does not support the CHECK command`, "CHECK needs 0.4.0 or later");
          }
          const cached = await this.cachedResultOf(list, rt, where, prepared.version);
          if (cached === undefined) {
            throw new UnknownContainerError(
              `[${COMPONENT}] network ${JSON.stringify(list.name)}: no cached result for container ${rt.containerId} interface ${rt.ifName}: CHECK needs a successful ADD first`,
              where.cache.path({ networkName: list.name, containerId: rt.containerId, ifName: rt.ifName }),
            );
          }
          for (const [i, plugin] of list.plugins.entries()) {
            await this.invoke({ list, plugin, index: i, path: prepared.paths[i]!, command: "CHECK", version: prepared.version, rt, where, prevResult: cached });
          }
        }),
      ),
    );
  }

  /**
   * STATUS: below 1.1.0 nothing is asked and the list counts as ready (`skipped: true`). Otherwise
   * every plugin's STATUS in list order, stopping at the first failure, which is thrown as a
   * `PluginError` with the plugin's code (50 not available, 51 and existing pods impaired).
   * Read-only; not serialized with other calls.
   */
  async status(list: NetworkConfigList, options: { cniPath?: string[] } = {}): Promise<StatusReport> {
    const where = this.whereOf(options.cniPath, undefined);
    const prepared = await this.prepare(list, where);
    if (versionLt(prepared.version, "1.1.0")) return { cniVersion: prepared.version, skipped: true };
    for (const [i, plugin] of list.plugins.entries()) {
      await this.invoke({ list, plugin, index: i, path: prepared.paths[i]!, command: "STATUS", version: prepared.version, where });
    }
    return { cniVersion: prepared.version, skipped: false };
  }

  /**
   * GC: with `disableGC` nothing is done. Otherwise, holding every container's calls back, DELs each
   * cached attachment of this network that is not in `validAttachments` (with the netns, CNI_ARGS
   * and capability arguments it was added with), then — at 1.1.0 and later — sends GC to every
   * plugin with `cni.dev/valid-attachments` (and libcni's older key `cni.dev/attachments`).
   * Continues past failures and throws `GcError` listing them all at the end. Idempotent.
   */
  async gc(list: NetworkConfigList, validAttachments: readonly ValidAttachment[], options: { cniPath?: string[]; cacheDir?: string } = {}): Promise<GcReport> {
    if (list.disableGC) return { deleted: [], pluginsCollected: false, disabled: true };
    const where = this.whereOf(options.cniPath, options.cacheDir);
    return this.gate.withExclusive(async () => {
      const valid = new Set(validAttachments.map((a) => `${a.containerId}\u0000${a.ifName}`));
      const errors: CniError[] = [];
      const deleted: ValidAttachment[] = [];
      for (const entry of await where.cache.list(list.name)) {
        if (valid.has(`${entry.containerId}\u0000${entry.ifName}`)) continue;
        const rt: RuntimeConf = { containerId: entry.containerId, ifName: entry.ifName, netns: entry.netns, args: entry.cniArgs, capabilityArgs: entry.capabilityArgs };
        try {
          // Under the container's lock file, and only if another runtime did not DEL or re-ADD it meanwhile.
          const gone = await where.locks.run(entry.containerId, async () => {
            const now = await where.cache.read({ networkName: list.name, containerId: entry.containerId, ifName: entry.ifName });
            if (now === undefined || "corrupt" in now || now.created !== entry.created) return false;
            await this.delLocked(list, rt, where);
            return true;
          });
          if (gone) deleted.push({ containerId: entry.containerId, ifName: entry.ifName });
        } catch (err) {
          const e = CniError.from(err);
          errors.push(new CniError(e.code, `failed to delete stale attachment ${entry.containerId} ${entry.ifName}: ${e.message}`, { cause: e }));
        }
      }
      let pluginsCollected = false;
      let prepared: Prepared | undefined;
      try {
        prepared = await this.prepare(list, where);
      } catch (err) {
        errors.push(CniError.from(err));
      }
      if (prepared && !versionLt(prepared.version, "1.1.0")) {
        pluginsCollected = true;
        const attachments = validAttachments.map((a) => ({ containerID: a.containerId, ifname: a.ifName }));
        for (const [i, plugin] of list.plugins.entries()) {
          try {
            await this.invoke({
              list,
              plugin,
              index: i,
              path: prepared.paths[i]!,
              command: "GC",
              version: prepared.version,
              where,
              extra: { "cni.dev/valid-attachments": attachments, "cni.dev/attachments": attachments },
            });
          } catch (err) {
            errors.push(CniError.from(err));
          }
        }
      }
      if (errors.length > 0) throw new GcError(list.name, errors);
      return { deleted, pluginsCollected, disabled: false };
    });
  }

  /**
   * VERSION of one plugin (found in the CNI path): what it answers, cached until the executable
   * changes on disk. A plugin older than VERSION (it answers `unknown CNI_COMMAND: VERSION`) counts
   * as supporting 0.1.0 only, as libcni decides. Throws `ConfigError` when the plugin is not in the
   * CNI path, `PluginError` when it fails otherwise or answers something that is not a version
   * list.
   */
  async version(pluginType: string, options: { cniPath?: string[] } = {}): Promise<PluginVersionInfo> {
    const where = this.whereOf(options.cniPath, undefined);
    const path = await this.find(pluginType, where.cniPath, "type");
    return this.versionOf(pluginType, path, "");
  }

  /**
   * The version the list runs at: the highest of its `candidateVersions` that this runtime and every
   * plugin support. Throws `VersionError` (1) naming, for the highest offered version, each plugin
   * that lacks it and what it supports; `ConfigError` when a plugin is not in the CNI path.
   */
  async negotiate(list: NetworkConfigList, options: { cniPath?: string[] } = {}): Promise<string> {
    return (await this.prepare(list, this.whereOf(options.cniPath, undefined))).version;
  }

  /** The cached attachments of a network (or of all networks), as GC sees them. Read-only. */
  async cachedAttachments(networkName?: string, options: { cacheDir?: string } = {}): Promise<CachedAttachment[]> {
    return this.whereOf(undefined, options.cacheDir).cache.list(networkName);
  }

  /** The path of the cache file of one attachment (it exists between a successful ADD and its DEL). */
  cachePath(list: NetworkConfigList, rt: Pick<RuntimeConf, "containerId" | "ifName" | "cacheDir">): string {
    return this.whereOf(undefined, rt.cacheDir).cache.path({ networkName: list.name, containerId: rt.containerId, ifName: rt.ifName });
  }

  // ------------------------------------------------------------------------------------------

  private whereOf(cniPath: string[] | undefined, cacheDir: string | undefined): Where {
    const path = cniPath ?? this.options.cniPath;
    const dir = cacheDir ?? this.options.cacheDir;
    if (cniPath !== undefined || cacheDir !== undefined) checkWhere(path, dir, "rt.");
    return { cniPath: path, cache: new ResultCache(dir), locks: new FileLocks(join(dir, "locks"), { timeoutMs: this.options.lockTimeoutMs ?? 2 * this.timeoutMs }) };
  }

  private where(rt: RuntimeConf, command: "ADD" | "DEL" | "CHECK"): Where {
    validateRuntimeConf(rt, command);
    return this.whereOf(rt.cniPath, rt.cacheDir);
  }

  private async addLocked(list: NetworkConfigList, rt: RuntimeConf, where: Where, state: { started: boolean }): Promise<CniResultJson> {
    const prepared = await this.prepare(list, where);
    let prev: Record<string, unknown> | undefined;
    for (const [i, plugin] of list.plugins.entries()) {
      state.started = true;
      const output = await this.invoke({ list, plugin, index: i, path: prepared.paths[i]!, command: "ADD", version: prepared.version, rt, where, prevResult: prev });
      prev = this.resultOf(output, { list, plugin, index: i, version: prepared.version });
    }
    const result = prev as CniResultJson;
    await where.cache.write({
      kind: "cnikitCacheV1",
      networkName: list.name,
      containerId: rt.containerId,
      ifName: rt.ifName,
      netns: rt.netns,
      cniArgs: rt.args ?? [],
      capabilityArgs: rt.capabilityArgs ?? {},
      cniVersion: prepared.version,
      result,
      config: { ...list.raw },
      created: new Date().toISOString(),
    });
    return result;
  }

  private async delLocked(list: NetworkConfigList, rt: RuntimeConf, where: Where): Promise<void> {
    const prepared = await this.prepare(list, where);
    let prevResult: Record<string, unknown> | undefined;
    // The cached result goes with DEL from 0.4.0 on (libcni's rule).
    if (!versionLt(prepared.version, "0.4.0")) {
      try {
        prevResult = await this.cachedResultOf(list, rt, where, prepared.version);
      } catch {
        // A corrupt or unconvertible cache entry must not block DEL: drop it and delete without.
        await where.cache.remove({ networkName: list.name, containerId: rt.containerId, ifName: rt.ifName });
      }
    }
    for (let i = list.plugins.length - 1; i >= 0; i--) {
      await this.invoke({ list, plugin: list.plugins[i]!, index: i, path: prepared.paths[i]!, command: "DEL", version: prepared.version, rt, where, prevResult });
    }
    await where.cache.remove({ networkName: list.name, containerId: rt.containerId, ifName: rt.ifName });
  }

  /** The cached result converted to `version`; undefined when none; throws `DecodeError` when unusable. */
  private async cachedResultOf(list: NetworkConfigList, rt: RuntimeConf, where: Where, version: string): Promise<Record<string, unknown> | undefined> {
    const entry = await where.cache.read({ networkName: list.name, containerId: rt.containerId, ifName: rt.ifName });
    if (entry === undefined) return undefined;
    if ("corrupt" in entry) throw new DecodeError(`[${COMPONENT}] cached result of ${rt.containerId}/${rt.ifName} is unusable: ${entry.corrupt}`);
    return convertResult(entry.result, entry.cniVersion, version);
  }

  /** Finds every plugin and agrees on the version. */
  private async prepare(list: NetworkConfigList, where: Where): Promise<Prepared> {
    const paths = await Promise.all(list.plugins.map((p, i) => this.find(p.type, where.cniPath, `plugins[${i}].type`)));
    const infos = await Promise.all(list.plugins.map((p, i) => this.versionOf(p.type, paths[i]!, list.name, i)));
    for (const candidate of list.candidateVersions) {
      if (!isSupportedVersion(candidate)) continue;
      if (infos.every((info) => info.supportedVersions.includes(candidate))) return { version: candidate, paths };
    }
    const offered = list.candidateVersions;
    const top = offered[0]!;
    const lacking = list.plugins
      .map((p, i) => ({ p, info: infos[i]! }))
      .filter(({ info }) => !info.supportedVersions.includes(top))
      .map(({ p, info }) => `${p.type} supports [${info.supportedVersions.join(", ")}]`);
    if (!isSupportedVersion(top)) lacking.unshift(`this runtime supports [${SUPPORTED_VERSIONS.join(", ")}]`);
    const common = SUPPORTED_VERSIONS.filter((v) => infos.every((info) => info.supportedVersions.includes(v)));
    const hint = common.length > 0 ? `; versions every plugin supports: [${common.join(", ")}] (add one to cniVersions)` : "";
    throw new VersionError(
      `[${COMPONENT}] network ${JSON.stringify(list.name)}: no CNI version the list offers [${offered.join(", ")}] is supported by every plugin: ${lacking.join("; ")}${hint}`,
      `offered [${offered.join(", ")}]; ${lacking.join("; ")}`,
    );
  }

  private async find(type: string, cniPath: string[], field: string): Promise<string> {
    for (const dir of cniPath) {
      const candidate = join(dir, type);
      try {
        const s = await stat(candidate);
        if (!s.isFile()) continue;
        await access(candidate, fsConstants.X_OK);
        return candidate;
      } catch {
        // Not here: try the next directory.
      }
    }
    throw new ConfigError({ component: COMPONENT, field, rule: `no executable plugin of that name in the CNI path [${cniPath.join(", ")}]`, value: type });
  }

  private async versionOf(type: string, path: string, network: string, index = -1): Promise<PluginVersionInfo> {
    const s = await stat(path);
    const stamp = `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}`;
    const known = this.versions.get(path);
    if (known && known.stamp === stamp) return known.info;
    const info = this.queryVersion(type, path, network, index);
    this.versions.set(path, { stamp, info });
    info.catch(() => {
      if (this.versions.get(path)?.info === info) this.versions.delete(path);
    });
    return info;
  }

  private async queryVersion(type: string, path: string, network: string, index: number): Promise<PluginVersionInfo> {
    const env = { ...this.baseEnv, CNI_COMMAND: "VERSION" };
    const output = await this.run({ type, index, network, command: "VERSION" }, { path, env, stdin: JSON.stringify({ cniVersion: RUNTIME_CNI_VERSION }), timeoutMs: this.timeoutMs });
    if (output.exitCode !== 0) {
      const parsed = parsePluginError(output);
      if (parsed.msg === "unknown CNI_COMMAND: VERSION") return { cniVersion: "0.1.0", supportedVersions: ["0.1.0"] };
      throw pluginError({ type, index, network, command: "VERSION" }, output, parsed);
    }
    let raw: unknown;
    try {
      raw = JSON.parse(output.stdout);
    } catch {
      raw = undefined;
    }
    const versions = isObject(raw) ? raw["supportedVersions"] : undefined;
    if (!isObject(raw) || !Array.isArray(versions) || versions.some((v) => typeof v !== "string")) {
      throw pluginError({ type, index, network, command: "VERSION" }, output, {
        code: CniCode.DecodingFailure,
        msg: `answered VERSION with something that is not {cniVersion, supportedVersions}: ${JSON.stringify(output.stdout.slice(0, 200))}`,
      });
    }
    return { cniVersion: typeof raw["cniVersion"] === "string" ? raw["cniVersion"] : "", supportedVersions: versions as string[] };
  }

  private async invoke(call: {
    list: NetworkConfigList;
    plugin: PluginConf;
    index: number;
    path: string;
    command: "ADD" | "DEL" | "CHECK" | "STATUS" | "GC";
    version: string;
    where: Where;
    rt?: RuntimeConf;
    prevResult?: Record<string, unknown> | undefined;
    extra?: Record<string, unknown>;
  }): Promise<PluginOutput> {
    const conf = pluginConfig(call.list, call.plugin, {
      cniVersion: call.version,
      capabilityArgs: call.rt?.capabilityArgs,
      prevResult: call.prevResult,
      ...(call.extra ? { extra: call.extra } : {}),
    });
    const env: Record<string, string> = { ...this.baseEnv, CNI_COMMAND: call.command, CNI_PATH: call.where.cniPath.join(":") };
    if (call.rt) {
      env["CNI_CONTAINERID"] = call.rt.containerId;
      if (call.rt.netns !== "") env["CNI_NETNS"] = call.rt.netns;
      env["CNI_IFNAME"] = call.rt.ifName;
      if (call.rt.args && call.rt.args.length > 0) env["CNI_ARGS"] = call.rt.args.map(([k, v]) => `${k}=${v}`).join(";");
    }
    const who = { type: call.plugin.type, index: call.index, network: call.list.name, command: call.command };
    const output = await this.run(who, { path: call.path, env, stdin: JSON.stringify(conf), timeoutMs: this.timeoutMs });
    if (output.exitCode !== 0) throw pluginError(who, output, parsePluginError(output));
    return output;
  }

  private async run(who: Who, call: Parameters<PluginExec>[0]): Promise<PluginOutput> {
    try {
      return await this.exec(call);
    } catch (err) {
      throw new PluginError({
        plugin: who.type,
        index: who.index,
        command: who.command,
        network: who.network,
        code: CniCode.Internal,
        pluginMsg: `could not be started (${call.path}): ${err instanceof Error ? err.message : String(err)}`,
        exitCode: null,
        cause: err,
      });
    }
  }

  /** An ADD's stdout as a result in `version`'s shape (converted when the plugin answered in another). */
  private resultOf(output: PluginOutput, at: { list: NetworkConfigList; plugin: PluginConf; index: number; version: string }): Record<string, unknown> {
    const who = { type: at.plugin.type, index: at.index, network: at.list.name, command: "ADD" };
    let raw: unknown;
    try {
      raw = JSON.parse(output.stdout);
    } catch (err) {
      throw pluginError(who, output, {
        code: CniCode.DecodingFailure,
        msg: `exited 0 but its ADD result is not JSON (${err instanceof Error ? err.message : String(err)}): ${JSON.stringify(output.stdout.slice(0, 200))}`,
      });
    }
    if (!isObject(raw)) throw pluginError(who, output, { code: CniCode.DecodingFailure, msg: `exited 0 but its ADD result is not a JSON object: ${JSON.stringify(output.stdout.slice(0, 200))}` });
    const given = raw["cniVersion"];
    // libcni's fixupResultVersion: a result without a version is in the config's.
    const from = typeof given === "string" && given !== "" ? given : at.version;
    try {
      return convertResult(raw, from, at.version);
    } catch (err) {
      throw pluginError(who, output, { code: CniCode.DecodingFailure, msg: `returned a result the runtime cannot use: ${err instanceof Error ? err.message : String(err)}` });
    }
  }
}

interface Who {
  type: string;
  index: number;
  network: string;
  command: string;
}

function pluginError(who: Who, output: PluginOutput, parsed: { code: number; msg: string; details?: string }): PluginError {
  return new PluginError({
    plugin: who.type,
    index: who.index,
    command: who.command,
    network: who.network,
    code: parsed.code,
    pluginMsg: parsed.msg,
    ...(parsed.details !== undefined ? { details: parsed.details } : {}),
    exitCode: output.exitCode,
    signal: output.signal,
    stderr: output.stderr,
  });
}

/**
 * A result given in version `from`, in the shape of version `to`: unchanged (with `cniVersion`
 * set) when both have the same shape (1.0.0/1.1.0; 0.3.0/0.3.1/0.4.0; 0.1.0/0.2.0), else
 * converted through the internal result (protocol.ts). Throws `DecodeError` (6) for a malformed
 * result, `VersionError` (1) for a version nobody knows or a conversion that loses every address.
 * Pure.
 */
export function convertResult(result: Record<string, unknown>, from: string, to: string): Record<string, unknown> {
  const family = (v: string): string => (v === "1.0.0" || v === "1.1.0" ? "1" : v === "0.1.0" || v === "0.2.0" ? "0.1" : "0.3");
  if (!isSupportedVersion(from)) throw new VersionError(`result version ${JSON.stringify(from)} is not one this runtime knows`, `runtime supports [${SUPPORTED_VERSIONS.join(", ")}]`);
  if (!isSupportedVersion(to)) throw new VersionError(`cannot convert a result to version ${JSON.stringify(to)}`, `runtime supports [${SUPPORTED_VERSIONS.join(", ")}]`);
  if (family(from) === family(to)) return { ...result, cniVersion: to };
  return formatResult(parsePrevResult(result, from), to);
}

function checkWhere(cniPath: unknown, cacheDir: unknown, prefix: string): void {
  if (!Array.isArray(cniPath) || cniPath.length === 0 || cniPath.some((d) => typeof d !== "string" || d === "")) {
    throw new ConfigError({ component: COMPONENT, field: `${prefix}cniPath`, rule: "must be a non-empty list of directories holding plugin executables", value: cniPath });
  }
  if (typeof cacheDir !== "string" || !isAbsolute(cacheDir)) {
    throw new ConfigError({ component: COMPONENT, field: `${prefix}cacheDir`, rule: "must be an absolute directory path", value: cacheDir });
  }
}

/**
 * Validates a RuntimeConf for a command: containerId and ifName as skel validates them, netns
 * required for ADD and CHECK, CNI_ARGS pairs without `=` / `;` in keys or `;` in values.
 * Throws `ConfigError` (7) naming the field (`rt.containerId`, ...). Pure.
 */
export function validateRuntimeConf(rt: RuntimeConf, command: "ADD" | "DEL" | "CHECK"): void {
  const bad = (field: string, rule: string, value: unknown): never => {
    throw new ConfigError({ component: COMPONENT, field: `rt.${field}`, rule, value });
  };
  if (typeof rt.containerId !== "string" || rt.containerId === "") bad("containerId", "is required", rt.containerId);
  try {
    validateContainerId(rt.containerId);
  } catch {
    bad("containerId", "must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$", rt.containerId);
  }
  if (typeof rt.ifName !== "string") bad("ifName", "is required", rt.ifName);
  try {
    validateIfName(rt.ifName);
  } catch (err) {
    bad("ifName", `must be a valid interface name (${err instanceof CniError ? err.message : String(err)})`, rt.ifName);
  }
  if (typeof rt.netns !== "string") bad("netns", "must be a string (the pod's network namespace path)", rt.netns);
  if ((command === "ADD" || command === "CHECK") && rt.netns === "") bad("netns", `is required for ${command}: the pod's network namespace path`, rt.netns);
  for (const [i, pair] of (rt.args ?? []).entries()) {
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== "string" || typeof pair[1] !== "string") bad(`args[${i}]`, "must be a [key, value] pair of strings", pair);
    const [k, v] = pair;
    if (k === "" || /[=;]/u.test(k)) bad(`args[${i}]`, 'key must be non-empty without "=" or ";"', pair);
    if (v.includes(";")) bad(`args[${i}]`, 'value must not contain ";"', pair);
  }
  if (rt.capabilityArgs !== undefined && !isObject(rt.capabilityArgs)) bad("capabilityArgs", "must be an object of capability name to value", rt.capabilityArgs);
}
