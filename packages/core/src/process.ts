/**
 * Process helpers every package that starts processes needs (the lab, the kernel tests of linux,
 * netpol and weave): one copy here.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, realpathSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { CniCode, CniError } from "./errors.ts";

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

/**
 * Compiles one of the C helpers a package ships (cni's plugin shim, the renderer's netlink helper,
 * weave's TAP helper) on this machine: `source` to `out` with `cc` (default $CC, else `cc`),
 * -O2 -Wall -Wextra -Werror, creating `out`'s directory; returns `out`. Safe to call again
 * (recompiles). The release build (static, stripped) is scripts/release/native.mjs.
 * @throws CniError (999) naming the helper, the source, the compiler, its message and the Debian
 *   packages that provide a compiler (gcc, libc6-dev).
 */
export function compileHelper(options: { label: string; source: string; out: string; cc?: string }): string {
  const cc = options.cc ?? process.env["CC"] ?? "cc";
  mkdirSync(dirname(options.out), { recursive: true });
  try {
    execFileSync(cc, ["-O2", "-Wall", "-Wextra", "-Werror", "-o", options.out, options.source], { stdio: ["ignore", "ignore", "pipe"] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString() ?? "";
    throw new CniError(CniCode.Internal, `[${options.label}] cannot compile ${options.source} with ${cc} (install the Debian packages gcc and libc6-dev): ${(err as Error).message} ${stderr}`.trim());
  }
  return options.out;
}
