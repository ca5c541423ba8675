import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError } from "@cnikit/core";
import { labMain, parseArgs, upOptions } from "../src/cli-main.ts";

const root = mkdtempSync(join(tmpdir(), "cnikit-lab-cli-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (l: string) => void out.push(l), err: (l: string) => void err.push(l) }, out, err };
}

describe("parseArgs", () => {
  it("reads --key value and --key=value", () => {
    const p = parseArgs(["up", "--backend", "flannel", "--nodes=3", "--keep-on-failure"]);
    expect(p.command).toBe("up");
    expect([...p.flags]).toEqual([["backend", "flannel"], ["nodes", "3"], ["keep-on-failure", true]]);
  });
  const bad: [string, string[], string][] = [
    ["unknown command", ["fly"], "command"],
    ["unknown option", ["down", "--backend", "x"], "--backend"],
    ["missing value", ["down", "--name"], "--name"],
    ["bare word", ["down", "lab"], "lab"],
  ];
  it.each(bad)("refuses %s naming it", (_l, argv, field) => {
    expect(() => parseArgs(argv)).toThrow(ConfigError);
    try {
      parseArgs(argv);
    } catch (e) {
      expect((e as ConfigError).field).toBe(field);
    }
  });
});

describe("upOptions", () => {
  const log = () => {};
  it("defaults to 2 pods per node", () => {
    expect(upOptions(parseArgs(["up", "--backend", "calico", "--mode", "bgp", "--nodes", "3", "--name", "x"]).flags, log)).toMatchObject({
      backend: "calico",
      mode: "bgp",
      nodes: 3,
      podsPerNode: 2,
      name: "x",
    });
  });
  const bad: [string, string[], string][] = [
    ["no backend", ["up", "--nodes", "3"], "--backend"],
    ["no nodes", ["up", "--backend", "flannel"], "--nodes"],
    ["nodes not a number", ["up", "--backend", "flannel", "--nodes", "three"], "--nodes"],
    ["subnets 3", ["up", "--backend", "flannel", "--nodes", "3", "--subnets", "3"], "--subnets"],
    ["config missing", ["up", "--backend", "flannel", "--nodes", "3", "--config", "/nonexistent.json"], "--config"],
  ];
  it.each(bad)("refuses %s naming the flag", (_l, argv, field) => {
    try {
      upOptions(parseArgs(argv).flags, log);
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
