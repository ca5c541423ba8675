// The CLI: matrices, one explained cell, the nft ruleset and filters of a node, usage and input errors.
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { main } from "../src/cli.ts";

const FIX = fileURLToPath(new URL("./fixtures/", import.meta.url));
const P = join(FIX, "policies.yaml");
const C = join(FIX, "cluster.yaml");

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await main(args, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

describe("cnikit-netpol", () => {
  it("explain prints the matrix per probe", async () => {
    const r = await cli(["explain", "--policies", P, "--cluster", C, "--port", "80,81", "--protocol", "TCP"]);
    expect(r.code).toBe(0);
    expect(r.out).toBe(
      [
        "TCP/80 x/a x/b x/c y/a y/b y/c z/a z/b z/c",
        "x/a      .   .   .   .   .   .   .   .   .",
        "x/b      X   .   .   .   .   .   .   .   .",
        "x/c      X   .   .   .   .   .   .   .   .",
        "y/a      X   .   .   .   .   .   .   .   .",
        "y/b      X   .   .   .   .   .   .   .   .",
        "y/c      X   .   .   .   .   .   .   .   .",
        "z/a      X   .   .   .   .   .   .   .   .",
        "z/b      X   .   .   .   .   .   .   .   .",
        "z/c      X   .   .   .   .   .   .   .   .",
        "",
        "TCP/81 x/a x/b x/c y/a y/b y/c z/a z/b z/c",
        "x/a      .   .   .   .   .   .   .   .   .",
        "x/b      X   .   .   .   .   .   .   .   .",
        "x/c      X   .   .   .   .   .   .   .   .",
        "y/a      .   .   .   .   .   .   .   .   .",
        "y/b      .   .   .   .   .   .   .   .   .",
        "y/c      .   .   .   .   .   .   .   .   .",
        "z/a      X   .   .   .   .   .   .   .   .",
        "z/b      X   .   .   .   .   .   .   .   .",
        "z/c      X   .   .   .   .   .   .   .   .",
        "",
      ].join("\n"),
    );
  });

  it("explain --from --to gives the reason for one cell", async () => {
    const r = await cli(["explain", "--policies", P, "--cluster", C, "--from", "y/b", "--to", "x/a", "--port", "81", "--protocol", "TCP"]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("y/b (10.244.2.11) → x/a (10.244.1.10) TCP/81: ALLOWED");
    expect(r.out).toContain("allowed by x/port-81 ingress[0] from[0] (namespaceSelector ns=y) ports[0] (TCP 81)");
    const d = await cli(["explain", "--policies", P, "--cluster", C, "--from=z/b", "--to=x/a", "--port=80"]);
    expect(d.out).toContain("TCP/80: DENIED");
  });

  it("nft prints the node's ruleset; filters prints its FilterPolicies", async () => {
    const r = await cli(["nft", "--policies", P, "--cluster", C, "--node", "node-a", "--families", "4"]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("table inet cnikit-netpol {");
    expect(r.out).toContain('elements = { "vxa" : goto in-policies }');
    const f = await cli(["filters", "--policies", P, "--cluster", C, "--node", "node-a"]);
    const parsed = JSON.parse(f.out) as { pod: string; direction: string }[];
    expect(parsed.map((x) => `${x.pod} ${x.direction}`)).toEqual(["x/a ingress"]);
  });

  const usage: { args: string[]; msg: RegExp }[] = [
    { args: [], msg: /^Usage:\n {2}cnikit-netpol explain/ },
    { args: ["bogus", "--policies", P, "--cluster", C], msg: /unknown command "bogus"; known commands: explain, nft, filters/ },
    { args: ["explain", "--cluster", C], msg: /--policies is required/ },
    { args: ["explain", "--policies", P, "--cluster", C, "--from", "x/a"], msg: /--from and --to go together/ },
    { args: ["explain", "--policies", P, "--cluster", C, "--protocol", "ICMP"], msg: /--protocol must be TCP, UDP or SCTP/ },
    { args: ["explain", "--policies", P, "--cluster", C, "--port", "0"], msg: /--port must be/ },
    {
      args: ["explain", "--policies", P, "--cluster", C, "--colour", "red"],
      msg: /^cnikit-netpol explain: unknown option --colour; known options: --policies, --cluster, --from, --to, --port, --protocol, --help \(-h\)\n/,
    },
    { args: ["filters", "--policies", P, "--cluster", C, "--node", "node-a", "--families", "4"], msg: /unknown option --families; known options: --policies, --cluster, --node, --help/ },
    { args: ["nft", "--policies", P, "--cluster", C, "--node"], msg: /--node needs a value/ },
    { args: ["nft", "--policies", P, "--cluster", C], msg: /--node is required/ },
    { args: ["explain", "--policies", "/nonexistent.yaml", "--cluster", C], msg: /cannot read \/nonexistent.yaml/ },
    { args: ["explain", "--policies", P, "--cluster", C, "--from", "x/zz", "--to", "x/a"], msg: /from: must name a pod/ },
  ];
  for (const u of usage) {
    it(`exits 2: ${u.args.join(" ") || "(no arguments)"}`, async () => {
      const r = await cli(u.args);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(u.msg);
    });
  }

  it("--help exits 0 with the usage on stdout, for the program and each command", async () => {
    for (const [args, head] of [
      [["--help"], /^Usage:\n {2}cnikit-netpol explain /],
      [["-h"], /^Usage:\n/],
      [["explain", "--help"], /^Usage: cnikit-netpol explain --policies <file> --cluster <file> \[--from/],
      [["nft", "-h"], /^Usage: cnikit-netpol nft /],
      [["filters", "--help"], /^Usage: cnikit-netpol filters /],
    ] as const) {
      const r = await cli([...args]);
      expect(r.code, args.join(" ")).toBe(0);
      expect(r.out).toMatch(head);
      expect(r.err).toBe("");
    }
  });

  it("reports an invalid policy with file, document, field and rule", async () => {
    const dir = mkdtempSync(join(tmpdir(), "netpol-cli-"));
    const bad = join(dir, "bad.yaml");
    writeFileSync(
      bad,
      "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\nspec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.9.0.0/24]}}]}]}\n",
    );
    const r = await cli(["explain", "--policies", bad, "--cluster", C]);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`[netpol ${bad}#1 (NetworkPolicy x/p)] spec.ingress[0].from[0].ipBlock.except[0]: must be a strict subset of \`cidr\``);
  });

  it("runs as a program (the bin entry point)", async () => {
    const tsx = fileURLToPath(new URL("../../../node_modules/.bin/tsx", import.meta.url));
    const out = execFileSync(tsx, ["--conditions=source", fileURLToPath(new URL("../src/cli.ts", import.meta.url)), "explain", "--policies", P, "--cluster", C, "--from", "x/b", "--to", "x/a"], {
      encoding: "utf8",
    });
    expect(out).toContain("x/b (10.244.1.11) → x/a (10.244.1.10) TCP/80: DENIED");
  });
});
