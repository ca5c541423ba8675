/**
 * For a backend package's kernel test in this workspace: the conformance CLI run as a real process
 * (`--dataplane linux`, from source, so the lab's cnikitd runs from source too), the labs it built
 * remembered and taken down in `cleanup()` when a crash left them up, and a temporary folder.
 * Used by packages/canal/test/kernel.test.ts and packages/weave/test/kernel.test.ts.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));
const cli = join(root, "conformance", "src", "cli.ts");
const labCli = join(root, "packages", "lab", "src", "cli.ts");
const tsx = createRequire(join(root, "package.json")).resolve("tsx/esm");

/** Network namespaces whose name mentions the lab (the lab's nodes, pods, router, etcd). */
export function namespacesOf(lab: string): string[] {
  const out = spawnSync("ip", ["netns", "list"], { encoding: "utf8" });
  return out.stdout
    .split("\n")
    .map((l) => l.split(" ")[0]!)
    .filter((ns) => ns.includes(lab));
}

export interface KernelCli {
  /** A fresh temporary folder, removed by `cleanup()`. */
  readonly tmp: string;
  /** Runs the CLI to the end without blocking the test's event loop; resolves with its exit and output. */
  run(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }>;
  /** Remembers a lab the CLI built (from its report) so `cleanup()` can take it down. */
  track(lab: string): void;
  /** Takes down every tracked lab that still has namespaces; removes the temporary folder. */
  cleanup(): void;
}

export function kernelCli(name: string): KernelCli {
  const tmp = mkdtempSync(join(tmpdir(), `cnikit-${name}-kernel-`));
  const labs = new Set<string>();
  return {
    tmp,
    run(args) {
      return new Promise((resolve, reject) => {
        // CNIKIT_FROM_SOURCE: the lab's cnikitd runs @cnikit/cni from source (the lab hands CNIKIT_*
        // on to its daemons), so a stale dist/ of the registry cannot hide a backend from it.
        const child = spawn(process.execPath, ["--conditions=source", "--import", tsx, cli, ...args], { cwd: root, env: { ...process.env, CNIKIT_FROM_SOURCE: "1" } });
        let stdout = "";
        let stderr = "";
        child.stdout.setEncoding("utf8").on("data", (t: string) => (stdout += t));
        child.stderr.setEncoding("utf8").on("data", (t: string) => (stderr += t));
        child.on("error", reject);
        child.on("close", (status) => resolve({ status, stdout, stderr }));
      });
    },
    track(lab) {
      labs.add(lab);
    },
    cleanup() {
      for (const lab of labs) {
        if (namespacesOf(lab).length > 0) spawnSync(process.execPath, ["--conditions=source", "--import", tsx, labCli, "down", "--name", lab], { cwd: root, encoding: "utf8", timeout: 120_000 });
      }
      rmSync(tmp, { recursive: true, force: true });
    },
  };
}
