// The CLI run from a user's project that has a backend package installed (@cnikit/flannel here):
// --backend <package> resolves from that project (the suite itself does not depend on flannel),
// section C comes from the package's `conformance` export, and --strict counts a required "not run".
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { main } from "@cnikit/conformance/cli";

const project = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const scratchDirs: string[] = [];
afterAll(() => {
  for (const dir of scratchDirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "cnikit-selftest-cli-"));
  scratchDirs.push(dir);
  return dir;
}

function io(cwd: string) {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { stdout: (t: string) => void out.push(t), stderr: (t: string) => void err.push(t), cwd } };
}

describe("--backend <package> from the user's project, --strict and section C without --invalid-configs", () => {
  it("loads a built-in package's `conformance` table; --strict turns a required 'not run' into exit 1", async () => {
    // The user's project is this package: @cnikit/flannel is installed in it, not next to the suite.
    const dir = tempDir();
    const config = join(dir, "c.json");
    writeFileSync(config, JSON.stringify({ Network: "10.244.0.0/16", Backend: { Type: "vxlan" } }));
    const t = io(project);
    const code = await main(["--backend", "@cnikit/flannel", "--config", config, "--nodes", "3", "--checks", "config.invalid-refused,claims.families", "--report", join(dir, "r.json")], t.io);
    expect(t.err.join("")).toMatch(/section C uses the \d+ invalid configs of @cnikit\/flannel's export conformance/);
    expect(code).toBe(0);
    const out = t.out.join("");
    expect(out).toMatch(/config\.invalid-refused\s+yes\s+passed/);
    // flannel claims IPv6; this config is IPv4 only: counted, never passed.
    expect(out).toMatch(/claims\.families\s+yes\s+not run\s+.*capabilities\.families claims IPv4, IPv6; this config exercises IPv4 only/);
    expect(out).toMatch(/- IPv6 not exercised\s+not run/);
    expect(out).toMatch(/1 required not run/);
    const strict = io(project);
    expect(await main(["--backend", "@cnikit/flannel", "--config", config, "--nodes", "3", "--checks", "claims.families", "--strict"], strict.io)).toBe(1);
    expect(strict.out.join("")).toMatch(/, strict: .*REQUIRED CHECK\(S\) NOT PASSED \(strict/);
  });
});
