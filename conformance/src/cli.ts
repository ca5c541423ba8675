#!/usr/bin/env node
/**
 * cnikit-conformance: runs the conformance suite against a backend module and a config file,
 * prints a table, writes a JSON report, and exits 0 (every required check passed), 1 (a required
 * check failed or threw), 2 (usage error: bad flags, unloadable backend, invalid config), 3 (the
 * suite itself crashed).
 *
 *   cnikit-conformance --backend <module specifier or path>[#exportName] --config <file.json|yaml>
 *     [--nodes N] [--seed S] [--report out.json] [--dataplane sim|linux] [--store memory|etcd://host:port]
 *     [--checks id,id] [--invalid-configs table.json] [--nodes-file nodes.json|yaml]
 *     [--topology topology.json|yaml] [--strict] [--list-checks]
 *
 * `--backend <package>` resolves from the working directory's project first (the user's
 * node_modules), then next to this package. The backend module may export its section-C tables as
 * `conformance` ({ invalidConfigs, anchorConfigs }); they are used when --invalid-configs is not given.
 *
 * `--dataplane linux` runs sections A, B, G and I on the real kernel through @cnikit/lab's driver,
 * loaded at run time (this package does not depend on the lab, which depends on it): resolved
 * from the working directory's project, else next to this package.
 *
 * This module never imports vitest.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, extname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { randomBytes } from "node:crypto";
import { parseCliArgs, runAsMain } from "@cnikit/core";
import type { Backend } from "@cnikit/core";
import { EtcdDatastore } from "@cnikit/etcd";
import type { NodeMetadata, SimTopology } from "@cnikit/sim";
import type { StoreProvider } from "./external-store.ts";
import { checkTopology, hasRequiredFailure, listChecks, runConformance, selectChecks } from "./runner.ts";
import { renderTable } from "./table.ts";
import { CONFORMANCE_EXPORT } from "./types.ts";
import type { AnchorConfigCase, BackendConformanceTables, CheckResult, ConformanceReport, InvalidConfigCase } from "./types.ts";

export const USAGE = `Usage: cnikit-conformance --backend <module or path>[#export] --config <file.json|yaml> [options]

Options:
  --backend <spec>          backend module (package name or file path); #name picks an export,
                            else the module's single export that looks like a Backend
  --config <file>           the backend's config in its own format (JSON, or YAML with the yaml package)
  --nodes <N>               nodes in the shared cluster (default 4)
  --seed <S>                seed of every random choice (default 1)
  --report <file>           write the JSON report there
  --dataplane sim|linux     sim (default): every section in the simulator. linux: sections A, B
                            (through the cnikit-cni executable), G (tcpdump on the underlay) and I
                            on real network namespaces
                            (a lab: nodes, etcd, one cnikitd per node that loads the --backend
                            module itself; root; --nodes 2-8, default 2); the other sections are
                            "not run". Needs the package @cnikit/lab, resolved from the current project
  --store <store>           the cluster datastore: memory (default), or etcd://host:port[,host:port][/prefix]
                            for a running etcd v3 (each simulated cluster gets its own key prefix under
                            /prefix/<run id>/, default /cnikit-conformance/, emptied afterwards); with
                            etcd, checks that need virtual lease expiry are reported "not run"
  --checks <id,id>          run only these checks (ids, section letters, or prefixes like dyn.*)
  --invalid-configs <file>  JSON/YAML list of {label, config, field} the backend must refuse (section C);
                            default: the backend module's export \`${CONFORMANCE_EXPORT}\` ({ invalidConfigs, anchorConfigs })
  --nodes-file <file>       JSON/YAML: the n-th node's roles, labels and annotations in every cluster, e.g.
                            {"nodes": [{"roles": ["control-plane"], "labels": {"route-reflector": "true"},
                            "annotations": {"projectcalico.org/RouteReflectorClusterID": "244.0.0.1"}}]}
  --topology <file>         JSON/YAML underlay of every simulated cluster: {"subnets": [{"name", "cidr",
                            "gateway", "mtu"}], "routers": [{"name", "interfaces": [{"subnet", "address"}],
                            "staticRoutes"}], "externals": [{"name", "address", "subnet"}]}
  --strict                  a required check "not run" or "not applicable" counts as not passed (exit 1)
  --list-checks             print every check id with its section and rule, and exit
  -h, --help                this text

Exit status: 0 every required check passed, 1 a required check failed (with --strict: or was not run /
not applicable), 2 usage error, 3 internal error.`;

/** Where the CLI writes; tests pass their own. */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  cwd: string;
}

class UsageError extends Error {}

/** What `--dataplane linux` needs from @cnikit/lab (its `runLinuxConformance`). */
export interface LinuxDriver {
  runLinuxConformance(options: {
    backend: Backend<unknown>;
    /** The module each node's cnikitd loads the backend from (absolute path, or a package resolved from `from`). */
    backendModule?: { module: string; from?: string; export?: string };
    config: unknown;
    configLabel?: string;
    nodes?: number;
    seed?: number;
    checks?: string[];
    log?: (line: string) => void;
    onResult?: (result: CheckResult) => void;
  }): Promise<ConformanceReport & { dataplane: "linux"; lab?: { name: string; buildMs: number } }>;
}

/** The package that holds the kernel driver. */
export const LINUX_DRIVER_PACKAGE = "@cnikit/lab";

/**
 * Loads the kernel driver: `@cnikit/lab` resolved from `cwd`'s project (its package.json, then up
 * the directory tree, as Node resolves), else from this package's own location (installed side by
 * side, or the cnikit workspace). `importer` loads a resolved URL or a bare specifier (tests pass
 * their own). Throws a usage error naming the package to install when neither finds it, or when
 * what it finds has no `runLinuxConformance`.
 */
export async function loadLinuxDriver(cwd: string, importer: (specifier: string) => Promise<unknown> = (s) => import(s)): Promise<LinuxDriver> {
  const problems: string[] = [];
  const candidates: { where: string; specifier: () => string }[] = [
    // The project's own node_modules, walked the way ESM resolves a bare specifier (NODE_PATH, which
    // pnpm's shims set, plays no part: a package outside the project is not the project's).
    {
      where: `from ${cwd}`,
      specifier: () => {
        const found = resolveEsmFrom(LINUX_DRIVER_PACKAGE, cwd);
        if (found === undefined) throw new Error(`Cannot find package '${LINUX_DRIVER_PACKAGE}' in a node_modules at or above ${cwd}`);
        return pathToFileURL(found).href;
      },
    },
    { where: "next to @cnikit/conformance", specifier: () => LINUX_DRIVER_PACKAGE },
  ];
  let found = false;
  for (const c of candidates) {
    let mod: unknown;
    try {
      mod = await importer(c.specifier());
    } catch (err) {
      problems.push(`${c.where}: ${err instanceof Error ? err.message.split("\n")[0] : String(err)}`);
      continue;
    }
    found = true;
    if (typeof (mod as { runLinuxConformance?: unknown } | null)?.runLinuxConformance === "function") return mod as LinuxDriver;
    problems.push(`${c.where}: it has no runLinuxConformance export`);
  }
  if (found) throw new UsageError(`${LINUX_DRIVER_PACKAGE} was found but has no runLinuxConformance export (${problems.join("; ")}); install a version that matches @cnikit/conformance, or build it`);
  throw new UsageError(
    `--dataplane linux needs the package ${LINUX_DRIVER_PACKAGE} (the kernel driver); install it in your project (npm install --save-dev ${LINUX_DRIVER_PACKAGE}) or run from the cnikit workspace. It could not be resolved: ${problems.join("; ")}`,
  );
}

const processIo: CliIo = {
  stdout: (t) => void process.stdout.write(t),
  stderr: (t) => void process.stderr.write(t),
  cwd: process.cwd(),
};

function looksLikeBackend(x: unknown): x is Backend<unknown> {
  if (x === null || typeof x !== "object") return false;
  const b = x as Record<string, unknown>;
  return (
    typeof b.name === "string" &&
    typeof b.parseConfig === "function" &&
    typeof b.createAgent === "function" &&
    typeof b.summarize === "function" &&
    typeof b.capabilities === "object" &&
    b.capabilities !== null
  );
}

/** Loads a module specifier or URL (tests pass their own). */
export type Importer = (specifier: string) => Promise<unknown>;

const nativeImport: Importer = (s) => import(s);

/** Why a module failed to load, in one line, with a hint for a TypeScript file Node cannot load. */
function loadProblem(spec: string, err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === "ERR_UNKNOWN_FILE_EXTENSION" || (/\.[cm]?ts$/.test(spec) && /Unknown file extension/.test(String(err)))) {
    return (
      `${spec} is a TypeScript file, which this Node cannot load by itself: run the CLI with a TypeScript loader ` +
      `(node --import tsx ./node_modules/.bin/cnikit-conformance ..., or npx tsx ./node_modules/.bin/cnikit-conformance ...) ` +
      `or compile the backend first (tsc) and pass the .js file`
    );
  }
  return err instanceof Error ? err.message.split("\n")[0]! : String(err);
}

/** Conditions Node was started with (`--conditions x`, `-C x`), then the ones an ESM import uses. */
function importConditions(): string[] {
  const user: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const m = /^(?:--conditions|-C)=(.+)$/.exec(a);
    if (m) user.push(m[1]!);
    else if ((a === "--conditions" || a === "-C") && argv[i + 1] !== undefined) user.push(argv[++i]!);
  }
  return [...user, "import", "node", "module-sync", "default"];
}

/** The target of a package.json `exports` value for `conditions` (first matching key, in the object's order). */
function exportTarget(value: unknown, conditions: readonly string[]): string | undefined {
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    for (const v of value) {
      const t = exportTarget(v, conditions);
      if (t !== undefined) return t;
    }
    return undefined;
  }
  if (isPlainObject(value)) {
    for (const [key, v] of Object.entries(value)) {
      if (conditions.includes(key)) {
        const t = exportTarget(v, conditions);
        if (t !== undefined) return t;
      }
    }
  }
  return undefined;
}

/**
 * Resolves a bare package specifier the way an ESM `import` in `cwd`'s project would (node_modules up
 * the tree, `exports` with the import conditions, else `main`, else index.js), so an ESM-only
 * package whose `exports` has no "require"/"default" entry still resolves. Undefined when no
 * installed package matches; the caller then falls back to require resolution.
 */
export function resolveEsmFrom(spec: string, cwd: string): string | undefined {
  const parts = spec.split("/");
  const nameLength = spec.startsWith("@") ? 2 : 1;
  if (parts.length < nameLength || parts.slice(0, nameLength).some((p) => p === "")) return undefined;
  const name = parts.slice(0, nameLength).join("/");
  const subpath = parts.length > nameLength ? `./${parts.slice(nameLength).join("/")}` : ".";
  for (let dir = resolve(cwd); ; dir = dirname(dir)) {
    const pkgDir = join(dir, "node_modules", name);
    const pkgFile = join(pkgDir, "package.json");
    if (existsSync(pkgFile)) {
      let pkg: { exports?: unknown; main?: unknown };
      try {
        pkg = JSON.parse(readFileSync(pkgFile, "utf8")) as { exports?: unknown; main?: unknown };
      } catch {
        return undefined;
      }
      const conditions = importConditions();
      if (pkg.exports !== undefined) {
        const map =
          typeof pkg.exports === "string" || Array.isArray(pkg.exports) || (isPlainObject(pkg.exports) && !Object.keys(pkg.exports).some((k) => k.startsWith(".")))
            ? { ".": pkg.exports }
            : (pkg.exports as Record<string, unknown>);
        const target = exportTarget(map[subpath], conditions);
        return target === undefined ? undefined : resolve(pkgDir, target);
      }
      if (subpath !== ".") return resolve(pkgDir, subpath);
      return resolve(pkgDir, typeof pkg.main === "string" ? pkg.main : "index.js");
    }
    if (dirname(dir) === dir) return undefined;
  }
}

async function importModule(spec: string, cwd: string, importer: Importer): Promise<Record<string, unknown>> {
  const isPath = spec.startsWith(".") || spec.startsWith("/") || /\.(m?[jt]s|cjs|cts|mts)$/.test(spec);
  if (isPath) {
    const url = pathToFileURL(resolve(cwd, spec)).href;
    try {
      return (await importer(url)) as Record<string, unknown>;
    } catch (err) {
      throw new UsageError(`cannot load backend module ${spec} (${url}): ${loadProblem(spec, err)}`);
    }
  }
  // A package name: from the current directory's project (the user's node_modules) first, then
  // next to the suite (installed side by side, or the cnikit workspace).
  const problems: string[] = [];
  let resolved: string | undefined;
  try {
    resolved = resolveEsmFrom(spec, cwd) ?? createRequire(resolve(cwd, "package.json")).resolve(spec);
  } catch (err) {
    problems.push(`from ${cwd}: ${loadProblem(spec, err)}`);
  }
  if (resolved !== undefined) {
    try {
      return (await importer(pathToFileURL(resolved).href)) as Record<string, unknown>;
    } catch (err) {
      throw new UsageError(`cannot load backend module ${spec} (resolved from ${cwd} to ${resolved}): ${loadProblem(resolved, err)}`);
    }
  }
  try {
    return (await importer(spec)) as Record<string, unknown>;
  } catch (err) {
    problems.push(`next to @cnikit/conformance: ${loadProblem(spec, err)}`);
  }
  throw new UsageError(`cannot load backend module ${spec}: install it in your project (npm install ${spec}) or give a path. ${problems.join("; ")}`);
}

/** A loaded backend and the module it came from (for its `conformance` export). */
export interface LoadedBackend {
  backend: Backend<unknown>;
  module: Record<string, unknown>;
}

/**
 * Loads `<module>[#export]` and returns the backend. Throws a usage error naming the module and
 * the candidates when the choice is missing or ambiguous.
 */
export async function loadBackend(spec: string, cwd: string, importer: Importer = nativeImport): Promise<Backend<unknown>> {
  return (await loadBackendModule(spec, cwd, importer)).backend;
}

/** Like `loadBackend`, also returning the module (its other exports, e.g. `conformance`). */
export async function loadBackendModule(spec: string, cwd: string, importer: Importer = nativeImport): Promise<LoadedBackend> {
  const hash = spec.lastIndexOf("#");
  const moduleSpec = hash > 0 ? spec.slice(0, hash) : spec;
  const exportName = hash > 0 ? spec.slice(hash + 1) : undefined;
  const mod = await importModule(moduleSpec, cwd, importer);
  if (exportName !== undefined) {
    const picked = mod[exportName];
    if (!looksLikeBackend(picked)) {
      throw new UsageError(
        `${moduleSpec} has no backend export named ${exportName} (a Backend has name, capabilities, parseConfig, summarize, createAgent); exports: ${Object.keys(mod).join(", ") || "(none)"}`,
      );
    }
    return { backend: picked, module: mod };
  }
  const candidates = [
    ...new Map(
      Object.entries(mod)
        .filter(([, v]) => looksLikeBackend(v))
        .map(([k, v]) => [v, k]),
    ).entries(),
  ];
  if (candidates.length === 1) return { backend: candidates[0]![0] as Backend<unknown>, module: mod };
  if (candidates.length === 0) {
    throw new UsageError(`${moduleSpec} exports nothing that looks like a Backend (name, capabilities, parseConfig, summarize, createAgent); exports: ${Object.keys(mod).join(", ") || "(none)"}`);
  }
  throw new UsageError(`${moduleSpec} exports several backends (${candidates.map(([, k]) => k).join(", ")}); pick one with ${moduleSpec}#<name>`);
}

/** What `readDataFile` uses of the optional `yaml` package. */
interface YamlModule {
  parseAllDocuments(text: string): YamlDocument | YamlDocument[];
}
interface YamlDocument {
  errors: { message: string }[];
  toJS(): unknown;
}

/**
 * Reads a JSON or YAML file into plain data: a YAML file of several documents is the list of its
 * non-empty documents. Throws a usage error naming the file (and the document) when it cannot.
 */
export async function readDataFile(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new UsageError(`cannot read the ${what} file ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const ext = extname(path).toLowerCase();
  if (ext === ".yaml" || ext === ".yml") {
    let yaml: YamlModule;
    try {
      const name = "yaml";
      yaml = (await import(name)) as YamlModule;
    } catch {
      throw new UsageError(`the ${what} file ${path} is YAML, which needs the 'yaml' package installed next to @cnikit/conformance; install it or give JSON`);
    }
    // Several `---` documents (Calico's usual `calicoctl apply -f` file) are read as the list of
    // them, empty ones skipped; one document is its value.
    const docs = yaml.parseAllDocuments(text);
    const values: unknown[] = [];
    for (const [i, doc] of (Array.isArray(docs) ? docs : [docs]).entries()) {
      const problem = doc.errors[0];
      if (problem !== undefined) throw new UsageError(`the ${what} file ${path} is not valid YAML (document ${i + 1}): ${problem.message}`);
      const value = doc.toJS();
      if (value !== null && value !== undefined) values.push(value);
    }
    return values.length === 1 ? values[0] : values;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new UsageError(`the ${what} file ${path} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function integer(value: string | undefined, flag: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (!/^-?\d+$/.test(value) || Number(value) < min || Number(value) > max) throw new UsageError(`${flag} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  return Number(value);
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return x !== null && typeof x === "object" && !Array.isArray(x);
}

function invalidTable(data: unknown, where: string): InvalidConfigCase[] {
  if (!Array.isArray(data)) throw new UsageError(`${where} must be a list of {label, config, field}`);
  return data.map((row: unknown, i) => {
    const r = row as Partial<InvalidConfigCase> | null;
    if (!r || typeof r.label !== "string" || typeof r.field !== "string" || !("config" in r)) {
      throw new UsageError(`${where}[${i}] must be {label: string, config: any, field: string}`);
    }
    return { label: r.label, config: r.config, field: r.field };
  });
}

function anchorTable(data: unknown, where: string): AnchorConfigCase[] {
  if (!Array.isArray(data)) throw new UsageError(`${where} must be a list of {label, config}`);
  return data.map((row: unknown, i) => {
    const r = row as Partial<AnchorConfigCase> | null;
    if (!r || typeof r.label !== "string" || !("config" in r)) throw new UsageError(`${where}[${i}] must be {label: string, config: any}`);
    return { label: r.label, config: r.config };
  });
}

/**
 * The section-C tables a backend module exports as `conformance` (`CONFORMANCE_EXPORT`), checked;
 * undefined when the module has no such export. Throws a usage error naming the field when the
 * export has the wrong shape.
 */
export function backendTables(mod: Record<string, unknown>, moduleSpec: string): BackendConformanceTables | undefined {
  const raw = mod[CONFORMANCE_EXPORT];
  if (raw === undefined) return undefined;
  const where = `${moduleSpec} export ${CONFORMANCE_EXPORT}`;
  if (!isPlainObject(raw)) throw new UsageError(`${where} must be an object { invalidConfigs?, anchorConfigs? }`);
  for (const key of Object.keys(raw)) {
    if (key !== "invalidConfigs" && key !== "anchorConfigs") throw new UsageError(`${where}.${key}: unknown key; known: invalidConfigs, anchorConfigs`);
  }
  const out: BackendConformanceTables = {};
  if (raw.invalidConfigs !== undefined) out.invalidConfigs = invalidTable(raw.invalidConfigs, `${where}.invalidConfigs`);
  if (raw.anchorConfigs !== undefined) out.anchorConfigs = anchorTable(raw.anchorConfigs, `${where}.anchorConfigs`);
  return out;
}

function checkStringMap(value: unknown, where: string): Record<string, string> {
  if (!isPlainObject(value)) throw new UsageError(`${where} must be an object of string values`);
  for (const [k, v] of Object.entries(value)) {
    if (k === "") throw new UsageError(`${where} has an empty key`);
    if (typeof v !== "string") throw new UsageError(`${where}.${k} must be a string, got ${JSON.stringify(v)}`);
  }
  return { ...(value as Record<string, string>) };
}

/** One node's metadata as the nodes file gives it. */
export interface NodeFileEntry {
  /** Kubernetes node roles: each becomes the label `node-role.kubernetes.io/<role>` with an empty value. */
  roles?: string[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/**
 * Parses a nodes file (`{"nodes": [entry, ...]}` or a bare list): the n-th entry gives the n-th
 * node of every cluster its roles, labels and annotations; nodes past the list get none. Throws a
 * usage error naming the field (`nodes[1].labels.zone`).
 */
export function parseNodesFile(data: unknown, path: string): NodeMetadata {
  const list = Array.isArray(data) ? data : isPlainObject(data) ? data.nodes : undefined;
  if (isPlainObject(data)) {
    for (const key of Object.keys(data)) if (key !== "nodes") throw new UsageError(`${path}: ${key}: unknown key; the nodes file has one key, nodes`);
  }
  if (!Array.isArray(list)) throw new UsageError(`${path}: nodes must be a list of {roles?, labels?, annotations?} (the n-th entry is the n-th node of every cluster)`);
  const entries = list.map((raw: unknown, i) => {
    const at = `${path}: nodes[${i}]`;
    if (!isPlainObject(raw)) throw new UsageError(`${at} must be an object {roles?, labels?, annotations?}`);
    for (const key of Object.keys(raw)) {
      if (key !== "roles" && key !== "labels" && key !== "annotations") throw new UsageError(`${at}.${key}: unknown key; known: roles, labels, annotations`);
    }
    const labels: Record<string, string> = raw.labels === undefined ? {} : checkStringMap(raw.labels, `${at}.labels`);
    if (raw.roles !== undefined) {
      if (!Array.isArray(raw.roles)) throw new UsageError(`${at}.roles must be a list of role names`);
      raw.roles.forEach((role: unknown, k) => {
        if (typeof role !== "string" || !/^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/.test(role)) {
          throw new UsageError(`${at}.roles[${k}] must be a role name (letters, digits, '-', '_', '.'), got ${JSON.stringify(role)}`);
        }
        labels[`node-role.kubernetes.io/${role}`] = "";
      });
    }
    const annotations = raw.annotations === undefined ? undefined : checkStringMap(raw.annotations, `${at}.annotations`);
    return { labels, ...(annotations ? { annotations } : {}) };
  });
  return (ordinal) => {
    const e = entries[ordinal];
    if (!e) return {};
    return { ...(Object.keys(e.labels).length > 0 ? { labels: { ...e.labels } } : {}), ...(e.annotations ? { annotations: { ...e.annotations } } : {}) };
  };
}

function checkKeys(obj: Record<string, unknown>, known: readonly string[], at: string): void {
  for (const key of Object.keys(obj)) if (!known.includes(key)) throw new UsageError(`${at}.${key}: unknown key; known: ${known.join(", ")}`);
}

function listOfObjects(value: unknown, at: string, required: boolean): Record<string, unknown>[] {
  if (value === undefined && !required) return [];
  if (!Array.isArray(value)) throw new UsageError(`${at} must be a list`);
  value.forEach((x: unknown, i) => {
    if (!isPlainObject(x)) throw new UsageError(`${at}[${i}] must be an object`);
  });
  return value as Record<string, unknown>[];
}

/**
 * Checks the shape of a topology file (the keys and types of every subnet, router, interface,
 * static route and external host) and returns it as a `SimTopology`; the simulator then checks the
 * addresses (CIDRs, gateways on their subnet, MTU range, overlaps). Throws a usage error naming
 * the field (`topology.subnets[1].mtu`).
 */
export function parseTopologyFile(data: unknown, path: string): SimTopology {
  const at = `${path}: topology`;
  if (!isPlainObject(data)) throw new UsageError(`${at} must be an object {subnets, routers?, externals?}`);
  checkKeys(data, ["subnets", "routers", "externals"], at);
  const str = (obj: Record<string, unknown>, key: string, where: string, required = true): void => {
    if (obj[key] === undefined && !required) return;
    if (typeof obj[key] !== "string" || obj[key] === "") throw new UsageError(`${where}.${key} must be a non-empty string, got ${JSON.stringify(obj[key])}`);
  };
  listOfObjects(data.subnets, `${at}.subnets`, true).forEach((s, i) => {
    const w = `${at}.subnets[${i}]`;
    checkKeys(s, ["name", "cidr", "gateway", "mtu"], w);
    str(s, "name", w);
    str(s, "cidr", w);
    str(s, "gateway", w, false);
    if (s.mtu !== undefined && (typeof s.mtu !== "number" || !Number.isInteger(s.mtu))) throw new UsageError(`${w}.mtu must be an integer, got ${JSON.stringify(s.mtu)}`);
  });
  listOfObjects(data.routers, `${at}.routers`, false).forEach((r, i) => {
    const w = `${at}.routers[${i}]`;
    checkKeys(r, ["name", "interfaces", "staticRoutes"], w);
    str(r, "name", w);
    listOfObjects(r.interfaces, `${w}.interfaces`, true).forEach((itf, k) => {
      checkKeys(itf, ["subnet", "address"], `${w}.interfaces[${k}]`);
      str(itf, "subnet", `${w}.interfaces[${k}]`);
      str(itf, "address", `${w}.interfaces[${k}]`);
    });
    listOfObjects(r.staticRoutes, `${w}.staticRoutes`, false).forEach((sr, k) => {
      checkKeys(sr, ["dst", "via"], `${w}.staticRoutes[${k}]`);
      str(sr, "dst", `${w}.staticRoutes[${k}]`);
      str(sr, "via", `${w}.staticRoutes[${k}]`);
    });
  });
  listOfObjects(data.externals, `${at}.externals`, false).forEach((e, i) => {
    const w = `${at}.externals[${i}]`;
    checkKeys(e, ["name", "address", "subnet"], w);
    str(e, "name", w);
    str(e, "address", w);
    str(e, "subnet", w);
  });
  return data as unknown as SimTopology;
}

/**
 * Parses `etcd://host:port[,host:port...][/prefix]` into an etcd store provider and checks that etcd
 * answers. Throws a usage error naming the flag when the form is wrong or etcd cannot be reached.
 */
export async function etcdStoreFromFlag(flag: string): Promise<StoreProvider> {
  const m = /^etcd:\/\/([^/]+)(\/.*)?$/.exec(flag);
  const hosts = m?.[1]?.split(",").filter(Boolean) ?? [];
  if (!m || hosts.length === 0 || hosts.some((h) => !/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(h))) {
    throw new UsageError(`--store ${flag}: must be etcd://host:port[,host:port...][/prefix], e.g. etcd://127.0.0.1:2379`);
  }
  const endpoints = hosts.map((h) => `http://${h}`);
  const base = `${(m[2] ?? "/cnikit-conformance").replace(/\/+$/, "")}/${randomBytes(4).toString("hex")}/`;
  let probe: EtcdDatastore;
  try {
    probe = await EtcdDatastore.connect({ endpoints, prefix: base, retryWindowMs: 3000 });
  } catch (err) {
    throw new UsageError(`--store ${flag}: cannot reach etcd (${err instanceof Error ? err.message : String(err)}); start etcd or fix the address`);
  }
  await probe.close();
  return {
    label: `etcd://${hosts.join(",")}${base.slice(0, -1)}`,
    create: (name) => EtcdDatastore.open({ endpoints, prefix: `${base}${name}/` }),
  };
}

const OPTIONS = {
  backend: { type: "string" },
  config: { type: "string" },
  nodes: { type: "string" },
  seed: { type: "string" },
  report: { type: "string" },
  dataplane: { type: "string" },
  store: { type: "string" },
  checks: { type: "string" },
  "invalid-configs": { type: "string" },
  "nodes-file": { type: "string" },
  topology: { type: "string" },
  strict: { type: "boolean" },
  "list-checks": { type: "boolean" },
} as const;

/**
 * Runs the CLI with `argv` (without node and script). Returns the exit status; never calls
 * process.exit itself.
 */
export async function main(argv: string[], io: CliIo = processIo): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    const parsed = parseCliArgs({ options: OPTIONS }, argv);
    if (parsed.help) {
      io.stdout(`${USAGE}\n`);
      return 0;
    }
    values = parsed.values;
  } catch (err) {
    io.stderr(`cnikit-conformance: ${err instanceof Error ? err.message : String(err)}\n\n${USAGE}\n`);
    return 2;
  }
  if (values["list-checks"]) {
    for (const c of listChecks()) io.stdout(`${c.section}  ${c.id}${c.required ? "" : " (optional)"}  ${c.rule}\n`);
    return 0;
  }
  try {
    const dataplane = (values.dataplane as string | undefined) ?? "sim";
    if (dataplane !== "sim" && dataplane !== "linux") throw new UsageError(`--dataplane must be sim or linux, got ${JSON.stringify(dataplane)}`);
    if (dataplane === "linux") {
      if (typeof process.getuid === "function" && process.getuid() !== 0) {
        throw new UsageError("--dataplane linux needs root: it builds network namespaces, veths, routes and nftables tables (run it as root, e.g. with sudo)");
      }
      if (values.store !== undefined) throw new UsageError("--store does not apply to --dataplane linux: the lab runs its own etcd");
      if (values["invalid-configs"] !== undefined) throw new UsageError("--invalid-configs does not apply to --dataplane linux: section C runs in the simulator");
      if (values.topology !== undefined || values["nodes-file"] !== undefined)
        throw new UsageError("--topology and --nodes-file apply to the simulator: with --dataplane linux the lab builds its own nodes and underlay");
    }
    const store = (values.store as string | undefined) ?? "memory";
    if (store === "file") throw new UsageError("--store file is not available in the conformance CLI yet; use --store memory or etcd://host:port");
    if (store !== "memory" && !store.startsWith("etcd:")) throw new UsageError(`--store must be memory or etcd://host:port, got ${JSON.stringify(store)}`);
    if (typeof values.backend !== "string" || values.backend === "") throw new UsageError("--backend is required");
    if (typeof values.config !== "string" || values.config === "") throw new UsageError("--config is required");
    const nodes = dataplane === "linux" ? integer(values.nodes as string | undefined, "--nodes", 2, 2, 8) : integer(values.nodes as string | undefined, "--nodes", 4, 2, 1000);
    const seed = integer(values.seed as string | undefined, "--seed", 1, 0, 2 ** 31 - 1);
    const checks =
      typeof values.checks === "string"
        ? values.checks
            .split(",")
            .map((s) => s.trim())
            .filter(Boolean)
        : undefined;
    try {
      selectChecks(checks);
    } catch (err) {
      throw new UsageError(`--checks: ${err instanceof Error ? err.message : String(err)}`);
    }
    const configPath = resolve(io.cwd, values.config);
    const { backend, module: backendModule } = await loadBackendModule(values.backend, io.cwd);
    const rawConfig = await readDataFile(configPath, "config");
    let parsedConfig: unknown;
    try {
      parsedConfig = backend.parseConfig(rawConfig);
    } catch (err) {
      throw new UsageError(`the config ${values.config} is not valid for backend ${backend.name}: ${err instanceof Error ? err.message : String(err)}`);
    }
    const invalidPath = values["invalid-configs"];
    // Section C's tables: --invalid-configs, else the backend module's own `conformance` export.
    const moduleSpec = values.backend.replace(/#[^#]*$/, "");
    const tables = dataplane === "sim" ? backendTables(backendModule, moduleSpec) : undefined;
    const invalidConfigs = typeof invalidPath === "string" ? invalidTable(await readDataFile(resolve(io.cwd, invalidPath), "invalid-configs"), invalidPath) : tables?.invalidConfigs;
    const anchorConfigs = tables?.anchorConfigs;
    if (typeof invalidPath !== "string" && dataplane === "sim") {
      io.stderr(
        tables?.invalidConfigs
          ? `cnikit-conformance: section C uses the ${tables.invalidConfigs.length} invalid configs of ${moduleSpec}'s export ${CONFORMANCE_EXPORT}\n`
          : `cnikit-conformance: ${moduleSpec} exports no ${CONFORMANCE_EXPORT}.invalidConfigs and no --invalid-configs was given: config.invalid-refused will be "not run"\n`,
      );
    }
    const nodesPath = values["nodes-file"];
    const nodeMetadata = typeof nodesPath === "string" ? parseNodesFile(await readDataFile(resolve(io.cwd, nodesPath), "nodes"), nodesPath) : undefined;
    const topologyPath = values.topology;
    const topology = typeof topologyPath === "string" ? parseTopologyFile(await readDataFile(resolve(io.cwd, topologyPath), "topology"), topologyPath) : undefined;
    if (topology) {
      try {
        checkTopology(backend, parsedConfig, topology);
      } catch (err) {
        const field = (err as { field?: unknown }).field;
        throw new UsageError(`${topologyPath}: ${typeof field === "string" ? `${field}: ` : ""}${err instanceof Error ? err.message : String(err)}`);
      }
    }
    const strict = values.strict === true;
    const storeProvider = store === "memory" ? undefined : await etcdStoreFromFlag(store);
    const progress = (r: CheckResult): void => io.stderr(`  ${r.status === "passed" ? "ok  " : r.status === "failed" || r.status === "error" ? "FAIL" : "--  "} ${r.id} (${r.status})\n`);
    if (dataplane === "linux") {
      const driver = await loadLinuxDriver(io.cwd);
      io.stderr(`cnikit-conformance: ${backend.name} with ${basename(configPath)} on the kernel (--dataplane linux), ${nodes} nodes\n`);
      // Every node's cnikitd loads the same module and export the CLI loaded: a path made absolute,
      // a package resolved from the user's project (else from next to this package, as above).
      const linuxSpec = values.backend.replace(/#[^#]*$/, "");
      const linuxExport = values.backend.includes("#") ? values.backend.slice(values.backend.lastIndexOf("#") + 1) : Object.keys(backendModule).find((k) => backendModule[k] === backend);
      const linuxIsPath = linuxSpec.startsWith(".") || linuxSpec.startsWith("/") || /\.(m?[jt]s|cjs|cts|mts)$/.test(linuxSpec);
      let linuxFrom = io.cwd;
      if (!linuxIsPath && resolveEsmFrom(linuxSpec, io.cwd) === undefined) {
        try {
          createRequire(resolve(io.cwd, "package.json")).resolve(linuxSpec);
        } catch {
          linuxFrom = dirname(fileURLToPath(import.meta.url));
        }
      }
      const linuxModule = linuxIsPath ? { module: resolve(io.cwd, linuxSpec) } : { module: linuxSpec, from: linuxFrom };
      let report;
      try {
        report = await driver.runLinuxConformance({
          backend,
          backendModule: { ...linuxModule, ...(linuxExport !== undefined ? { export: linuxExport } : {}) },
          config: rawConfig,
          configLabel: basename(configPath),
          nodes,
          seed,
          ...(checks ? { checks } : {}),
          log: (line) => io.stderr(`  lab: ${line}\n`),
          onResult: progress,
        });
      } catch (err) {
        // The driver refuses what it cannot run (e.g. a config it cannot take) with a ConfigError (code 7).
        if ((err as { code?: unknown }).code === 7) throw new UsageError(`--dataplane linux: ${err instanceof Error ? err.message : String(err)}`);
        io.stderr(`cnikit-conformance: the kernel run crashed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
        return 3;
      }
      return finish(strict ? { ...report, strict } : report, values.report, io);
    }

    io.stderr(`cnikit-conformance: ${backend.name} with ${basename(configPath)}, ${nodes} nodes, seed ${seed}${storeProvider ? `, store ${storeProvider.label}` : ""}\n`);
    let report;
    try {
      report = await runConformance({
        backend,
        config: rawConfig,
        configLabel: basename(configPath),
        nodes,
        seed,
        ...(checks ? { checks } : {}),
        ...(invalidConfigs ? { invalidConfigs } : {}),
        ...(anchorConfigs ? { anchorConfigs } : {}),
        ...(nodeMetadata ? { nodeMetadata } : {}),
        ...(topology ? { topology } : {}),
        ...(strict ? { strict } : {}),
        ...(storeProvider ? { store: storeProvider } : {}),
        onResult: progress,
      });
    } catch (err) {
      io.stderr(`cnikit-conformance: the suite crashed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      return 3;
    }
    return finish(report, values.report, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`cnikit-conformance: ${err.message}\n\n${USAGE}\n`);
      return 2;
    }
    io.stderr(`cnikit-conformance: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 3;
  }
}

/** Prints the table, writes the JSON report when asked, and returns the exit status. */
async function finish(report: ConformanceReport, reportPath: string | boolean | undefined, io: CliIo): Promise<number> {
  io.stdout(`${renderTable([report])}\n`);
  if (typeof reportPath === "string") {
    const out = resolve(io.cwd, reportPath);
    await mkdir(dirname(out), { recursive: true });
    await writeFile(out, `${JSON.stringify(report, null, 2)}\n`);
    io.stderr(`cnikit-conformance: report written to ${out}\n`);
  }
  return hasRequiredFailure(report) ? 1 : 0;
}

runAsMain(import.meta.url, "cnikit-conformance", (argv) => main(argv), { internalErrorStatus: 3 });
