import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseCliConfig } from "../src/cli-config.ts";
import { runCli } from "../src/cli.ts";
import { BgpConfigError } from "../src/errors.ts";
import { BgpSpeaker } from "../src/speaker.ts";
import { tcpTransport } from "../src/transport/tcp.ts";
import { freePort } from "./support/ports.ts";

const exec = promisify(execFile);
const TSX = join(import.meta.dirname, "../../../node_modules/.bin/tsx");
const CLI = join(import.meta.dirname, "../src/cli.ts");

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "bgp-cli-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("configuration file", () => {
  it.each([
    { doc: [], field: "(document)" },
    { doc: { asn: 64512, routerId: "10.0.0.1", peer: [] }, field: "peer" },
    { doc: { asn: "x", routerId: "10.0.0.1" }, field: "asn" },
    { doc: { asn: 64512, routerId: "10.0.0.1", peers: [{ address: "10.0.0.2", asn: 1, pasive: true }] }, field: "peers[0].pasive" },
    { doc: { asn: 64512, routerId: "10.0.0.1", peers: [{ address: "10.0.0.2", asn: 70000000000 }] }, field: "peers[0].asn" },
    { doc: { asn: 64512, routerId: "10.0.0.1", listen: { port: 99999 } }, field: "listen.port" },
    { doc: { asn: 64512, routerId: "10.0.0.1", listen: { port: 179, backlog: 0 } }, field: "listen.backlog" },
    { doc: { asn: 64512, routerId: "10.0.0.1", routes: ["10.0.0.0/8", { prefix: "10.1.0.0/16", nexthop: "1.2.3.4" }] }, field: "routes[1].nexthop" },
  ])("refuses a bad $field", ({ doc, field }) => {
    let err: unknown;
    try {
      parseCliConfig(doc);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BgpConfigError);
    expect((err as BgpConfigError).field).toBe(field);
  });

  it("fills in listen from localAddress and accepts route strings and objects", () => {
    const cfg = parseCliConfig({ asn: 64512, routerId: "10.0.0.1", localAddress: "127.0.0.5", routes: ["10.0.0.0/8", { prefix: "10.1.0.0/16", nextHop: "192.0.2.1" }] });
    expect(cfg.listen).toEqual({ address: "127.0.0.5", port: 179 });
    expect(parseCliConfig({ asn: 64512, routerId: "10.0.0.1", listen: { port: 1179, backlog: 4096 } }).listen).toEqual({ address: "0.0.0.0", port: 1179, backlog: 4096 });
    expect(cfg.routes).toEqual([
      { prefix: "10.0.0.0/8", options: {} },
      { prefix: "10.1.0.0/16", options: { nextHop: "192.0.2.1" } },
    ]);
  });
});

describe("bgp-utils-free run", () => {
  it("runs a speaker from a JSON file, peers over TCP, and prints its RIB", async () => {
    const portCli = await freePort("127.0.0.21");
    const peer = tcpTransport({ listenAddress: "127.0.0.22", listenPort: 0 });
    const other = new BgpSpeaker({ asn: 65022, routerId: "10.0.0.22", localAddress: "127.0.0.22", transport: peer, peers: [] });
    await other.listen();
    other.addPeer({ address: "127.0.0.21", asn: 65021, port: portCli, passive: true });
    other.announce("10.22.0.0/16", { communities: ["65022:1"] });
    const file = join(dir, "a.json");
    await writeFile(
      file,
      JSON.stringify({
        asn: 65021,
        routerId: "10.0.0.21",
        localAddress: "127.0.0.21",
        listen: { port: portCli },
        holdTime: 9,
        peers: [{ address: "127.0.0.22", asn: 65022, port: peer.boundPort() }],
        routes: [{ prefix: "10.21.0.0/16", med: 7 }],
      }),
    );
    const out: string[] = [];
    const err: string[] = [];
    const running = runCli(["run", file, "--until-routes", "2"], { out: (l) => out.push(l), err: (l) => err.push(l) });
    await other.start();
    const code = await running;
    await other.stop();
    expect(err).toEqual([]);
    expect(code).toBe(0);
    expect(out).toContain("session 127.0.0.22 OpenConfirm -> Established");
    expect(out).toContain("route added 10.22.0.0/16 via 127.0.0.22 from 127.0.0.22");
    const table = out.slice(out.findIndex((l) => l.startsWith("prefix")));
    expect(table[0]).toMatch(/^prefix\s+next hop\s+from\s+as path\s+lp\s+med\s+origin\s+flags$/);
    expect(table[1]).toMatch(/^10\.21\.0\.0\/16\s+127\.0\.0\.21\s+local\s+-\s+-\s+7\s+i\s+-$/);
    expect(table[2]).toMatch(/^10\.22\.0\.0\/16\s+127\.0\.0\.22\s+127\.0\.0\.22\s+65022\s+100\s+-\s+i\s+65022:1$/);
    expect(table[3]).toBe("2 routes");
  });

  it("the executable checks JSON and YAML files and exits 2 with the field on a bad one", async () => {
    const json = join(dir, "ok.json");
    await writeFile(json, JSON.stringify({ asn: 64512, routerId: "10.0.0.1", peers: [{ address: "10.0.0.2", asn: 64512 }], routes: ["10.0.0.0/24"] }));
    const { stdout } = await exec(TSX, [CLI, "check", json]);
    expect(stdout).toBe(`${json}: ok (1 peers, 1 routes)\n`);
    const yaml = join(dir, "ok.yaml");
    await writeFile(
      yaml,
      'asn: 64512\nrouterId: 10.0.0.1\npeers:\n  - address: 10.0.0.2\n    asn: 64512\n    passive: true\nroutes:\n  - 10.0.0.0/24\n  - prefix: 10.1.0.0/24\n    communities: ["64512:10"]\n',
    );
    expect((await exec(TSX, [CLI, "check", yaml])).stdout).toBe(`${yaml}: ok (1 peers, 2 routes)\n`);
    const bad = join(dir, "bad.json");
    await writeFile(bad, JSON.stringify({ asn: 64512, routerId: "10.0.0.1", holdTime: 1 }));
    const failed = await exec(TSX, [CLI, "check", bad]).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    expect(failed?.code).toBe(2);
    expect(failed?.stderr).toMatch(/holdTime: must be 0 or at least 3 seconds/);
  });
});

describe("arguments", () => {
  const run = async (...args: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runCli(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
    return { code, out: out.join("\n"), err: err.join("\n") };
  };

  it("--help and -h exit 0 with the usage on stdout (they used to exit 2)", async () => {
    for (const args of [["--help"], ["-h"], ["run", "--help"], ["check", "x.yaml", "-h"]]) {
      const r = await run(...args);
      expect(r.code, args.join(" ")).toBe(0);
      expect(r.out).toMatch(/^Usage: bgp-utils-free run <config.yaml\|config.json>/);
      expect(r.out).toContain("--until-routes <n>");
      expect(r.err).toBe("");
    }
  });

  it.each([
    { args: ["run", "c.yaml", "--exit-afer", "3"], message: /^bgp-utils-free: unknown option --exit-afer; known options: --exit-after, --until-routes, --json, --quiet, --help \(-h\)\n/ },
    { args: ["run", "c.yaml", "--exit-after"], message: /--exit-after needs a value; known options: / },
    { args: ["run", "c.yaml", "--exit-after", "soon"], message: /--exit-after needs a number ≥ 0, got "soon"/ },
    { args: ["run", "c.yaml", "--until-routes=-1"], message: /--until-routes needs a number ≥ 0, got "-1"/ },
    { args: [], message: /a command is required: run or check/ },
    { args: ["start", "c.yaml"], message: /unknown command "start"; known commands: run, check/ },
    { args: ["check"], message: /check needs a configuration file/ },
    { args: ["check", "a.yaml", "b.yaml"], message: /unexpected argument "b.yaml"/ },
    { args: ["check", "a.yaml", "--json"], message: /apply to run, not check/ },
  ])("refuses $args with exit 2 and says why", async ({ args, message }) => {
    const r = await run(...args);
    expect(r.code).toBe(2);
    expect(r.out).toBe("");
    expect(r.err).toMatch(message);
  });

  it("each run flag still works: --exit-after, --json and --quiet with a speaker that only dials", async () => {
    const file = join(dir, "alone.json");
    await writeFile(file, JSON.stringify({ asn: 64512, routerId: "10.0.0.9", listen: false, routes: ["10.9.0.0/24"] }));
    const r = await run("run", file, "--exit-after", "0", "--json", "--quiet");
    expect(r.code).toBe(0);
    expect(r.err).toBe("");
    expect(JSON.parse(r.out)).toMatchObject({ prefix: "10.9.0.0/24", origin: "i" });
  });
});
