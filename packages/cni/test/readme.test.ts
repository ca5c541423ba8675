/**
 * The README's "Try it" section, run as written: its shell blocks and config files are parsed out of
 * README.md (each follows a `<!-- readme-test: <name> -->` marker) and run in one shell from the
 * repository root, with the one name `cnikit-try` (namespaces, the /tmp directory, the network)
 * renamed to one of this run's own. Needs root, iproute2 and nftables, like the kernel tests.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { deleteNetns } from "@cnikit/linux";
import { until } from "./helpers.ts";

const README = fileURLToPath(new URL("../README.md", import.meta.url));
const REPO = fileURLToPath(new URL("../../../", import.meta.url));
const NAME = `ckr${process.pid}`;

/** The fenced block that follows `<!-- readme-test: name -->`, with `cnikit-try` renamed. */
function block(text: string, name: string): string {
  const m = new RegExp(`<!-- readme-test: ${name.replace(/\./g, "\\.")} -->\\n\`\`\`[a-z]*\\n([\\s\\S]*?)\`\`\`\\n`).exec(text);
  if (!m) throw new Error(`README.md has no block marked readme-test: ${name}`);
  return m[1]!.replace(/cnikit-try/g, NAME);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const pidFile = `/tmp/${NAME}/cnikitd.pid`;
afterAll(async () => {
  if (existsSync(pidFile)) {
    const pid = Number(readFileSync(pidFile, "utf8"));
    if (pid > 0 && alive(pid)) process.kill(pid, "SIGKILL");
  }
  for (const ns of [`${NAME}-pod`, NAME]) await deleteNetns(ns).catch(() => undefined);
  rmSync(`/tmp/${NAME}`, { recursive: true, force: true });
});

describe("README: try it", () => {
  it("the README's blocks start one daemon in its own namespace, ADD gives the pod an address, DEL removes it, the daemon stops", async () => {
    const text = readFileSync(README, "utf8");
    const config = block(text, "cnikitd.json");
    const net = block(text, "net.json");
    // The config files are valid JSON as printed, and safe: a namespace of their own, no NAT.
    expect(JSON.parse(config)).toMatchObject({ renderer: { type: "linux", netns: NAME }, backendConfig: { natOutgoing: false } });
    expect(JSON.parse(net)).toMatchObject({ type: "cnikit-cni", socketPath: `/tmp/${NAME}/run/cnikitd.sock` });
    const script = ["set -e", block(text, "setup"), `cat > cnikitd.json <<'CNIKIT_EOF'\n${config}CNIKIT_EOF`, `cat > net.json <<'CNIKIT_EOF'\n${net}CNIKIT_EOF`, block(text, "run")].join("\n");
    const r = spawnSync("sh", ["-c", script], { cwd: REPO, encoding: "utf8", env: { ...process.env, CNIKIT_FROM_SOURCE: "1" }, timeout: 240_000 });
    const log = existsSync(`/tmp/${NAME}/cnikitd.log`) ? readFileSync(`/tmp/${NAME}/cnikitd.log`, "utf8") : "";
    expect(r.status, `stdout:\n${r.stdout}\nstderr:\n${r.stderr}\ncnikitd.log:\n${log}`).toBe(0);
    // ADD printed a result with an address of the reference network, and the pod's eth0 had it.
    const result = JSON.parse(r.stdout.split("\n").find((l) => l.startsWith("{"))!) as { ips: { address: string }[] };
    const address = result.ips[0]!.address;
    expect(address).toMatch(/^10\.250\.\d+\.\d+\/24$/);
    expect(r.stdout).toMatch(new RegExp(`^eth0@\\S+\\s+UP\\s+${address.replace(/\./g, "\\.")}`, "m"));
    // --wait-ready said so, and the daemon's own ready line is in its log.
    expect(r.stderr).toContain("node try-1 ready (STATUS 0 on");
    // DEL removed the interface; the daemon stops after the kill.
    expect(spawnSync("ip", ["-n", `${NAME}-pod`, "link", "show", "eth0"]).status).not.toBe(0);
    const pid = Number(readFileSync(pidFile, "utf8"));
    await until(() => !alive(pid), 30_000, "cnikitd exits after kill");
    expect(readFileSync(`/tmp/${NAME}/cnikitd.log`, "utf8")).toContain("cnikitd: node try-1 ready (backend reference");
  });
});
