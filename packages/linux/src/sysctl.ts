/**
 * Reading and writing `/proc/sys` inside a namespace. `/proc/sys/net` shows the namespace of the
 * process that opens it, so for the current namespace the files are read and written directly (no
 * process at all), and for another one `sysctl` runs under `nsenter --net` (one process for all keys).
 */
import { readFile, writeFile } from "node:fs/promises";
import { CommandError, inNetns, runProcess, type NetnsRef, type SpawnCounter } from "./exec.ts";

/** `sysctl`'s display name of a `/proc/sys`-relative path (dots inside a component become `/`). */
export function sysctlDisplayName(path: string): string {
  return path
    .split("/")
    .map((c) => c.replace(/\./g, "/"))
    .join(".");
}

/** Reads `keys` (`/proc/sys`-relative paths) in `ns`; keys that do not exist are left out. */
export async function readSysctls(ns: NetnsRef, keys: readonly string[], counter?: SpawnCounter): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (keys.length === 0) return out;
  if (ns === undefined) {
    await Promise.all(
      keys.map(async (k) => {
        try {
          out.set(k, (await readFile(`/proc/sys/${k}`, "utf8")).trim());
        } catch {
          // absent (an interface that does not exist): left out
        }
      }),
    );
    return out;
  }
  const argv = inNetns(ns, ["sysctl", "-e", ...keys]);
  const r = await runProcess(argv, undefined, counter);
  if (r.code !== 0) throw new CommandError({ argv, netns: ns, stderr: r.stderr, exitCode: r.code, what: "sysctl (read)" });
  const byName = new Map(keys.map((k) => [sysctlDisplayName(k), k]));
  for (const line of r.stdout.split("\n")) {
    const eq = line.indexOf(" = ");
    if (eq < 0) continue;
    const key = byName.get(line.slice(0, eq));
    if (key !== undefined) out.set(key, line.slice(eq + 3).trim());
  }
  return out;
}

/**
 * Writes `entries` in `ns` (all keys in one `sysctl -w` process, or direct writes for the current
 * namespace).
 * @throws CommandError naming the keys when a write fails (e.g. the interface does not exist).
 */
export async function writeSysctls(ns: NetnsRef, entries: readonly { key: string; value: string }[], counter?: SpawnCounter): Promise<void> {
  if (entries.length === 0) return;
  if (ns === undefined) {
    const failed: string[] = [];
    for (const e of entries) {
      try {
        await writeFile(`/proc/sys/${e.key}`, e.value);
      } catch (err) {
        failed.push(`${e.key}=${e.value}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    if (failed.length > 0) throw new CommandError({ argv: ["write", "/proc/sys"], netns: ns, stderr: failed.join("\n"), exitCode: 1, what: "sysctl (write)" });
    return;
  }
  const argv = inNetns(ns, ["sysctl", "-q", "-w", ...entries.map((e) => `${e.key}=${e.value}`)]);
  const r = await runProcess(argv, undefined, counter);
  if (r.code !== 0 || r.stderr.trim() !== "") throw new CommandError({ argv, netns: ns, stderr: r.stderr, exitCode: r.code, what: `sysctl -w ${entries.map((e) => e.key).join(" ")}` });
}
