import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { PLAN_SUBNET_USAGE, USAGE, main } from "../src/cli.ts";

async function run(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await main(argv, { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t) });
  return { code, stdout, stderr };
}

describe("cnikit-azure (main)", () => {
  it("--help and plan-subnet --help exit 0 with the usage on stdout", async () => {
    for (const argv of [["--help"], ["-h"]]) expect(await run(...argv)).toEqual({ code: 0, stdout: `${USAGE}\n`, stderr: "" });
    for (const argv of [
      ["plan-subnet", "--help"],
      ["plan-subnet", "-h"],
    ])
      expect(await run(...argv)).toEqual({ code: 0, stdout: `${PLAN_SUBNET_USAGE}\n`, stderr: "" });
  });

  it("prints the reference's worked table for n = 50, maxPods 30", async () => {
    const r = await run("plan-subnet", "--nodes", "50", "--max-pods", "30");
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain("node addresses, incl. surge  50 + 1      =     51\n");
    expect(r.stdout).toMatch(/required\s+51 \+ 1,530\s+=\s+1,581 {2}\(= 51 × 31\)/);
    expect(r.stdout).toMatch(/plus Azure reserved\s+1,581 \+ 5\s+=\s+1,586/);
    expect(r.stdout).toMatch(/\/22 usable\s+1,024 − 5\s+=\s+1,019 {2}→ too small/);
    expect(r.stdout).toMatch(/\/21 usable\s+2,048 − 5\s+=\s+2,043 {2}→ fits \(462 spare\)/);
  });

  it("--subnet that fits: exact headroom, exit 0", async () => {
    const r = await run("plan-subnet", "--nodes", "5", "--max-pods", "30", "--subnet", "10.240.0.0/24");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("10.240.0.0/24 fits: 186 required of 251 usable. Headroom: 2 more nodes (31 addresses each) with the surge reserve of 31 kept free, 3 addresses spare after that.");
    expect(r.stderr).toBe("");
  });

  it("--subnet that does not fit (AKS#456): the table, then AKS's refusal on stderr, exit 1", async () => {
    const r = await run("plan-subnet", "--nodes", "9", "--max-pods", "30", "--subnet", "10.240.0.0/24");
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/\/23 usable\s+512 − 5\s+=\s+507 {2}→ fits \(197 spare\)/);
    expect(r.stderr).toBe(
      "10.240.0.0/24 does not fit: Pre-allocated IPs 310 exceeds IPs available 251: (n + 1) × (maxPods + 1) = (9 + 1) × (30 + 1) = 310 with n = 9 nodes and 1 surge node; the smallest subnet that fits is a /23 (507 usable)\n",
    );
  });

  it("--surge changes the formula (9 nodes + 3 surge on a /23: 507 − 9 × 31 − 3 × 31 = 135 → 4 more nodes, 11 spare)", async () => {
    const r = await run("plan-subnet", "--nodes", "9", "--max-pods", "30", "--surge", "3", "--subnet", "10.240.0.0/23");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("node addresses, incl. surge  9 + 3");
    expect(r.stdout).toContain("10.240.0.0/23 fits: 372 required of 507 usable. Headroom: 4 more nodes (31 addresses each) with the surge reserve of 93 kept free, 11 addresses spare after that.");
  });

  it("--json prints one object with the rows and the subnet verdict", async () => {
    const r = await run("plan-subnet", "--nodes", "9", "--max-pods", "30", "--subnet", "10.240.0.0/24", "--json");
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout) as { required: number; smallestPrefix: number; rows: { step: string }[]; subnet: { fits: boolean; usable: number; refusal: string } };
    expect(out.required).toBe(310);
    expect(out.smallestPrefix).toBe(23);
    expect(out.rows).toHaveLength(6);
    expect(out.subnet).toMatchObject({ cidr: "10.240.0.0/24", fits: false, usable: 251 });
    expect(out.subnet.refusal).toMatch(/^Pre-allocated IPs 310 exceeds IPs available 251: /);
    expect(r.stderr).toContain("Pre-allocated IPs 310 exceeds IPs available 251");
  });

  const usageErrors: { label: string; argv: string[]; message: RegExp }[] = [
    { label: "no command", argv: [], message: /^Usage: cnikit-azure/ },
    { label: "unknown command", argv: ["plan"], message: /unknown command "plan"; known commands: plan-subnet/ },
    { label: "unknown top-level flag", argv: ["--version"], message: /^cnikit-azure: unknown option --version \(known before a command: --help \(-h\)\); known commands: plan-subnet\n/ },
    {
      label: "unknown flag",
      argv: ["plan-subnet", "--nodes", "3", "--max-pods", "30", "--pods", "3"],
      message: /^cnikit-azure plan-subnet: unknown option --pods; known options: --nodes, --max-pods, --surge, --subnet, --json, --help \(-h\)\n/,
    },
    { label: "positional", argv: ["plan-subnet", "3"], message: /unexpected argument "3" \(this command takes only options\)/ },
    { label: "flag without its value", argv: ["plan-subnet", "--max-pods", "30", "--nodes"], message: /--nodes needs a value; known options: / },
    { label: "missing --nodes", argv: ["plan-subnet", "--max-pods", "30"], message: /--nodes is required/ },
    { label: "missing --max-pods", argv: ["plan-subnet", "--nodes", "3"], message: /--max-pods is required \(an integer from 10 to 250\)/ },
    { label: "--max-pods out of range", argv: ["plan-subnet", "--nodes", "3", "--max-pods", "300"], message: /--max-pods must be an integer from 10 to 250, got "300"/ },
    { label: "--nodes not a number", argv: ["plan-subnet", "--nodes", "ten", "--max-pods", "30"], message: /--nodes must be an integer/ },
    { label: "--surge negative", argv: ["plan-subnet", "--nodes", "3", "--max-pods", "30", "--surge=-1"], message: /--surge must be an integer from 0/ },
    { label: "nothing to size", argv: ["plan-subnet", "--nodes", "0", "--max-pods", "30", "--surge", "0"], message: /nothing to size/ },
    {
      label: "--subnet host bits",
      argv: ["plan-subnet", "--nodes", "3", "--max-pods", "30", "--subnet", "10.240.0.1/24"],
      message: /--subnet: host bits must be zero \(did you mean 10\.240\.0\.0\/24\?\)/,
    },
    { label: "--subnet IPv6", argv: ["plan-subnet", "--nodes", "3", "--max-pods", "30", "--subnet", "fd00::/64"], message: /--subnet must be an IPv4 CIDR/ },
    { label: "--subnet /30", argv: ["plan-subnet", "--nodes", "3", "--max-pods", "30", "--subnet", "10.240.0.0/30"], message: /--subnet must be a \/29 or larger/ },
  ];
  it.each(usageErrors)("usage error, exit 2: $label", async ({ argv, message }) => {
    const r = await run(...argv);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(message);
  });
});

describe("cnikit-azure as a process", () => {
  const dir = mkdtempSync(join(tmpdir(), "cnikit-azure-cli-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("runs as the main module through a .bin-style symlink (real paths compared) and exits with the verdict", async () => {
    const pkg = fileURLToPath(new URL("..", import.meta.url));
    const link = join(dir, "cnikit-azure");
    symlinkSync(fileURLToPath(new URL("../src/cli.ts", import.meta.url)), link);
    const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile("npx", ["tsx", "--conditions=source", link, "plan-subnet", "--nodes", "9", "--max-pods", "30", "--subnet", "10.240.0.0/24"], { cwd: pkg }, (err, stdout, stderr) => {
        resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : null, stdout, stderr });
      });
    });
    expect(result.stderr).toContain("Pre-allocated IPs 310 exceeds IPs available 251");
    expect(result.stdout).toMatch(/\/23 usable\s+512 − 5\s+=\s+507 {2}→ fits \(197 spare\)/);
    expect(result.code).toBe(1);
  });
});
