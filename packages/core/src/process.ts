/**
 * Process helpers every package that starts processes needs (the lab, the kernel tests of linux,
 * netpol and weave): one copy here.
 */
import { readFileSync, realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** Whether process `pid` exists and is not a zombie (whatever it runs). Linux (/proc). */
export function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\d+ \(.*\) Z /s.test(stat);
  } catch {
    return false;
  }
}

/**
 * Whether the module at `moduleUrl` (its `import.meta.url`) is the process's main script. Compares
 * real paths, so it holds when the script was started through an npm `.bin` symlink (comparing the
 * symlink's path with the module's URL does not). False when imported, or when `argv[1]` is absent.
 */
export function isMainModule(moduleUrl: string, argv1: string | undefined = process.argv[1]): boolean {
  if (!argv1) return false;
  try {
    return realpathSync(argv1) === realpathSync(fileURLToPath(moduleUrl));
  } catch {
    return false;
  }
}
