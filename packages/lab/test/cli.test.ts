import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError } from "@cnikit/core";
import { labMain, upOptions } from "../src/cli-main.ts";

const root = mkdtempSync(join(tmpdir(), "cnikit-lab-cli-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (l: string) => void out.push(l), err: (l: string) => void err.push(l) }, out, err };
}

describe("arguments", () => {
  it("--help exits 0 with the usage on stdout, for the CLI and each command", async () => {
    for (const [argv, head] of [
      [["--help"], /^Usage:\n {2}pnpm lab up --backend /],
      [["help"], /^Usage:\n/],
      [["up", "--help"], /^Usage: pnpm lab up --backend <name>/],
      [["check", "-h"], /^Usage: pnpm lab check /],
      [["down", "--help"], /^Usage: pnpm lab down /],
      [["status", "--help"], /^Usage: pnpm lab status /],
    ] as const) {
      const a = io();
      expect(await labMain(argv, a.io), argv.join(" ")).toBe(0);
      expect(a.out.join("\n")).toMatch(head);
      expect(a.err).toEqual([]);
    }
  });
  const bad: [string, string[], RegExp][] = [
    ["unknown command", ["fly"], /^lab: unknown command "fly"; known commands: up, check, down, status\n/],
    ["option of another command", ["down", "--backend", "x"], /^lab down: unknown option --backend; known options: --state-root, --name, --help \(-h\)\n/],
    ["missing value", ["down", "--name"], /^lab down: --name needs a value; /],
    ["bare word", ["down", "lab"], /^lab down: unexpected argument "lab"/],
  ];
  it.each(bad)("refuses %s with exit 2, naming it", async (_l, argv, message) => {
    const a = io();
    expect(await labMain(argv, a.io)).toBe(2);
    expect(a.err.join("\n")).toMatch(message);
    expect(a.out).toEqual([]);
  });
});

describe("upOptions", () => {
  const log = () => {};
  it("defaults to 2 pods per node and takes each flag", () => {
    expect(upOptions({ backend: "calico", mode: "bgp", nodes: "3", name: "x" }, log)).toMatchObject({ backend: "calico", mode: "bgp", nodes: 3, podsPerNode: 2, name: "x" });
    expect(upOptions({ backend: "flannel", nodes: "2", "pods-per-node": "4", subnets: "2", "log-level": "debug", "state-root": "/tmp/x", "keep-on-failure": true }, log)).toMatchObject({
      nodes: 2,
      podsPerNode: 4,
      subnets: 2,
      logLevel: "debug",
      stateRoot: "/tmp/x",
      keepOnFailure: true,
    });
  });
  const bad: [string, Parameters<typeof upOptions>[0], string][] = [
    ["no backend", { nodes: "3" }, "--backend"],
    ["no nodes", { backend: "flannel" }, "--nodes"],
    ["nodes not a number", { backend: "flannel", nodes: "three" }, "--nodes"],
    ["subnets 3", { backend: "flannel", nodes: "3", subnets: "3" }, "--subnets"],
    ["config missing", { backend: "flannel", nodes: "3", config: "/nonexistent.json" }, "--config"],
    ["log level", { backend: "flannel", nodes: "3", "log-level": "loud" }, "--log-level"],
  ];
  it.each(bad)("refuses %s naming the flag", (_l, values, field) => {
    try {
      upOptions(values, log);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      expect((e as ConfigError).field).toBe(field);
    }
  });
});

describe("labMain", () => {
  it("exits 2 with the usage for no command and for a bad one", async () => {
    const a = io();
    expect(await labMain([], a.io)).toBe(2);
    expect(a.err.join("\n")).toMatch(/pnpm lab up --backend reference\|flannel\|calico\|canal\|weave\|azure /);
    const b = io();
    expect(await labMain(["up", "--backend", "nope", "--nodes", "1", "--state-root", root], b.io)).toBe(2);
    expect(b.err.join("\n")).toMatch(/backend/);
  });
  it("refuses an unknown mode, listing the known ones, before creating anything", async () => {
    const a = io();
    expect(await labMain(["up", "--backend", "flannel", "--mode", "ipip", "--nodes", "1", "--state-root", root], a.io)).toBe(2);
    expect(a.err.join("\n")).toContain("vxlan, vxlan-directrouting, host-gw");
  });
  it("status and down say there is nothing when there is nothing", async () => {
    const a = io();
    expect(await labMain(["status", "--state-root", join(root, "empty")], a.io)).toBe(0);
    expect(a.out).toEqual(["no labs"]);
    const b = io();
    expect(await labMain(["down", "--name", "none", "--state-root", root], b.io)).toBe(0);
    expect(b.out).toEqual(["lab none: nothing to remove"]);
  });
});
