/**
 * `down`: removes exactly what a lab's state file records, in reverse: processes (only recorded
 * PIDs whose /proc/<pid>/cmdline still shows the lab's marker), then namespaces (the recorded
 * ones, then any other carrying the lab's own prefix — made on top of the lab by a driver), then directories (only inside the lab's state directory),
 * the state directory last. Works on a lab in any state: up, half built after a crash, with
 * daemons killed; running it twice is fine.
 */
import { existsSync, rmSync } from "node:fs";
import { ConfigError } from "@cnikit/core";
import { DEFAULT_STATE_ROOT, checkLabName, labDir, nsPrefix } from "./plan.ts";
import { readState, stateFile, writeState, type LabState, type ProcessResource } from "./state.ts";
import { deleteNetns, listNetns, netnsExists } from "@cnikit/linux";
import { findProcessesByMarker, processMatches, stopProcesses } from "./system.ts";

/** What `down` removed, and anything it could not. */
export interface DownReport {
  name: string;
  /** Whether there was a lab (a state directory) to remove. */
  existed: boolean;
  /** PIDs signalled. */
  killed: number[];
  namespaces: string[];
  dirs: string[];
  /** Things still present afterwards (namespaces, `pid <n> (<role>)`); empty on success. */
  leftovers: string[];
}

/**
 * Removes lab `name` (see the module comment). Idempotent. Throws `ConfigError` for a bad name or
 * a state file that is not a lab's (nothing is touched then).
 */
export async function downLab(name: string, options: { stateRoot?: string; graceMs?: number } = {}): Promise<DownReport> {
  const dir = labDir(checkLabName(name), options.stateRoot ?? DEFAULT_STATE_ROOT);
  const report: DownReport = { name, existed: existsSync(dir), killed: [], namespaces: [], dirs: [], leftovers: [] };
  if (!report.existed) return report;
  if (!existsSync(stateFile(dir))) {
    // Crashed between creating the directory and writing the first state: nothing else exists.
    rmSync(dir, { recursive: true, force: true });
    report.dirs.push(dir);
    return report;
  }
  const state: LabState = readState(dir);
  if (state.name !== name) throw new ConfigError({ component: "lab", field: stateFile(dir), rule: `names lab ${state.name}, not ${name}` });
  state.phase = "deleting";
  writeState(dir, state);

  // 1. Processes. A process recorded without a PID (the lab died between spawning it and writing
  // its PID) is found by its marker, a path inside this lab's state directory.
  const procs = state.resources.filter((r): r is ProcessResource => r.kind === "process");
  const targets: { pid: number; marker: string; role: string }[] = [];
  for (const p of procs) {
    if (!p.marker.startsWith(`${dir}/`)) continue;
    if (p.pid !== undefined) targets.push({ pid: p.pid, marker: p.marker, role: p.role });
    else for (const pid of findProcessesByMarker(p.marker)) targets.push({ pid, marker: p.marker, role: p.role });
  }
  report.killed = await stopProcesses(targets, { graceMs: options.graceMs ?? 3000 });

  // 2. Namespaces, newest first.
  const prefix = `${nsPrefix(name)}-`;
  const recorded = state.resources.filter((r) => r.kind === "netns").map((r) => (r.kind === "netns" ? r.name : ""));
  for (const ns of [...recorded].reverse()) {
    if (!ns.startsWith(prefix)) continue;
    if (!netnsExists(ns)) continue;
    await deleteNetns(ns);
    report.namespaces.push(ns);
  }

  // Namespaces made on top of the lab and never recorded in its state (the suite's kernel
  // lifecycle driver gives every attachment a namespace of its own, `<prefix>-b<n>`): the prefix
  // is this lab's alone, so whatever still carries it is the lab's and goes too.
  for (const ns of await listNetns()) {
    if (!ns.startsWith(prefix) || recorded.includes(ns)) continue;
    await deleteNetns(ns);
    report.namespaces.push(ns);
  }

  // Anything still there keeps the state, so a later `down` can try again.
  const present = new Set(await listNetns());
  for (const ns of present) if (ns.startsWith(prefix)) report.leftovers.push(ns);
  for (const t of targets) if (processMatches(t.pid, t.marker)) report.leftovers.push(`pid ${t.pid} (${t.role})`);
  if (report.leftovers.length > 0) return report;

  // 3. Directories, newest first; the state directory (recorded first) goes last.
  const dirs = state.resources.filter((r) => r.kind === "dir").map((r) => (r.kind === "dir" ? r.path : ""));
  for (const d of [...dirs].reverse()) {
    if (d !== dir && !d.startsWith(`${dir}/`)) continue;
    if (!existsSync(d)) continue;
    rmSync(d, { recursive: true, force: true });
    report.dirs.push(d);
  }
  if (existsSync(dir)) {
    rmSync(dir, { recursive: true, force: true });
    report.dirs.push(dir);
  }
  return report;
}
