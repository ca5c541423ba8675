/**
 * The lab's state file, `<stateRoot>/<name>/state.json`: what the lab is (plan, backend, pods) and
 * every resource it created, each recorded BEFORE it is created (write-ahead), so `down` can remove
 * exactly what `up` made even when `up` crashed half way or a daemon was killed. Written whole to a
 * temporary file and renamed over the old one, so a crash never leaves a torn file.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync, existsSync } from "node:fs";
import { ConfigError, NotFoundError } from "@cnikit/core";
import type { NetworkSummary } from "@cnikit/core";
import type { LabPlan } from "./plan.ts";

/** A network namespace the lab created. */
export interface NetnsResource {
  kind: "netns";
  name: string;
}

/**
 * A process the lab started. `marker` is one argument of its command line (a path inside the lab's
 * state directory); `pid` is set as soon as the process exists. `down` signals `pid` only while
 * /proc/<pid>/cmdline still contains `marker`.
 */
export interface ProcessResource {
  kind: "process";
  /** Unique per lab: `etcd`, `cnikitd:node-1`, `probe:pod-1-1`. */
  role: string;
  ns: string;
  marker: string;
  pid?: number;
}

/** A directory the lab created (removed recursively by `down`; always inside the state dir). */
export interface DirResource {
  kind: "dir";
  path: string;
}

export type LabResource = NetnsResource | ProcessResource | DirResource;

/** A pod of the lab. */
export interface PodRecord {
  name: string;
  node: string;
  ns: string;
  containerId: string;
  ifName: string;
  /** The pod's IPv4 address once ADD succeeded. */
  ip?: string;
  /** The plugin's result as printed. */
  result?: unknown;
  /** The probe agent's control socket. */
  controlSocket: string;
}

/**
 * A backend that is not built in: the module every cnikitd of the lab loads it from (cnikitd's
 * `backend: {module, from?, export?}`). `module` is an absolute path or a package name resolved
 * from `from` (absolute).
 */
export interface LabBackendModule {
  module: string;
  from?: string;
  export?: string;
}

/** What `up` was asked for, as resolved. */
export interface LabSpec {
  /** The backend's name (a built-in one, or the name of the module's Backend). */
  backend: string;
  /** Set when cnikitd loads the backend from a module rather than the built-in list. */
  backendModule?: LabBackendModule;
  mode: string;
  backendConfig: unknown;
  nodes: number;
  podsPerNode: number;
  summary: NetworkSummary;
  /** cnikitd's renderer (default linux). */
  renderer?: "linux" | "none";
  /** cniVersion of the lab's network config (default 1.0.0). */
  cniVersion?: string;
  /** cnikitd's log level (default info). */
  logLevel?: "debug" | "info" | "warn" | "error";
  /** The backend has a cluster-level controller: the lab runs `cnikit-controller` for it. */
  controller?: boolean;
}

export interface LabState {
  version: 1;
  name: string;
  createdAt: string;
  /** `creating` until `up` finished; `up` after; `failed` when `up` threw. */
  phase: "creating" | "up" | "failed" | "deleting";
  /** The PID of the process that runs `up` (or holds the lab through the API) while creating. */
  ownerPid: number;
  spec: LabSpec;
  plan: LabPlan;
  resources: LabResource[];
  pods: PodRecord[];
  /** Pods made so far per node (names are never reused, not even after a delete). */
  podCounters?: Record<string, number>;
  /** Last error of `up`, for `status`. */
  error?: string;
}

/** The state file's path for a lab directory. */
export function stateFile(dir: string): string {
  return `${dir}/state.json`;
}

/** Reads a lab's state; `NotFoundError` when there is none, `ConfigError` when it is unreadable. */
export function readState(dir: string): LabState {
  const file = stateFile(dir);
  if (!existsSync(file)) throw new NotFoundError(`[lab] no lab state at ${file}`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new ConfigError({ component: "lab", field: file, rule: `must be the lab's JSON state (${(e as Error).message})` });
  }
  const s = raw as Partial<LabState>;
  if (s.version !== 1 || !Array.isArray(s.resources) || !Array.isArray(s.pods) || typeof s.name !== "string") {
    throw new ConfigError({ component: "lab", field: file, rule: "must be a lab state file of version 1" });
  }
  return s as LabState;
}

/** Writes a lab's state atomically (temporary file + rename). */
export function writeState(dir: string, state: LabState): void {
  mkdirSync(dir, { recursive: true });
  const file = stateFile(dir);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(tmp, file);
}

/**
 * A lab's state held in memory and written through on every change. Not safe for two writers:
 * one process owns a lab at a time (`up`, then `check` or `down`).
 */
export class StateStore {
  readonly dir: string;
  state: LabState;

  constructor(dir: string, state: LabState) {
    this.dir = dir;
    this.state = state;
  }

  /** Writes the state now. */
  save(): void {
    writeState(this.dir, this.state);
  }

  /** Records a resource (before it is created) and writes the state. */
  record(resource: LabResource): void {
    this.state.resources.push(resource);
    this.save();
  }

  /** Records a process (before it is started): replaces an earlier one of the same role. */
  recordProcess(resource: Omit<ProcessResource, "kind" | "pid">): ProcessResource {
    const entry: ProcessResource = { kind: "process", ...resource };
    const at = this.state.resources.findIndex((r) => r.kind === "process" && r.role === resource.role);
    if (at >= 0) this.state.resources[at] = entry;
    else this.state.resources.push(entry);
    this.save();
    return entry;
  }

  /** Sets the PID of a recorded process and writes the state. */
  setPid(entry: ProcessResource, pid: number): void {
    entry.pid = pid;
    this.save();
  }

  /** The recorded process of `role`. */
  process(role: string): ProcessResource | undefined {
    return this.state.resources.find((r): r is ProcessResource => r.kind === "process" && r.role === role);
  }

  /** Forgets resources (after they were removed) and writes the state. */
  forget(match: (r: LabResource) => boolean): void {
    this.state.resources = this.state.resources.filter((r) => !match(r));
    this.save();
  }
}
