// The BGP scenarios over calico through the contract's NodeAgent.bgpSessions: bgp-session (every
// session of a cold start to Established and End-of-RIB) and graceful-restart (zero route loss at
// every change, End-of-RIB flushing the stale routes), and a broken variant that sends Cease when
// it restarts (peers withdraw its routes at once) turning graceful-restart red.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { builtinBackend } from "@cnikit/backends";
import type { Backend, PeerConnection, PeerTransport } from "@cnikit/core";
import { encodeNotification } from "bgp-utils-free";
import { builtinTargets, main } from "../src/cli.ts";
import { renderMarkdown, runBench } from "../src/index.ts";

const calico = builtinBackend("calico");
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
const bgpConfig = calico.configs.find((c) => c.label === "bgp")!;

/** A connection whose close() first sends a BGP NOTIFICATION Cease/2 (Administrative Shutdown). */
function ceaseOnClose(c: PeerConnection): PeerConnection {
  return {
    get remote() {
      return c.remote;
    },
    get service() {
      return c.service;
    },
    get closed() {
      return c.closed;
    },
    send: (m) => c.send(m),
    onMessage: (h) => c.onMessage(h),
    onClose: (h) => c.onClose(h),
    close: (reason) => {
      if (!c.closed) c.send(encodeNotification({ code: 6, subcode: 2, data: new Uint8Array(0) }));
      c.close(reason);
    },
  };
}

/**
 * Calico, broken: its speaker's connections say Cease whenever they close, so a restart looks like
 * an administrative shutdown to its peers (a speaker without graceful restart): they withdraw its
 * routes at once.
 */
const calicoCeaseOnRestart: Backend<unknown> = {
  ...calico.backend,
  createAgent(ctx) {
    const peers: PeerTransport = {
      get self() {
        return ctx.peers.self;
      },
      listen: (service, on) => ctx.peers.listen(service, (c) => on(ceaseOnClose(c))),
      connect: async (peer, service) => ceaseOnClose(await ctx.peers.connect(peer, service)),
      sendDatagram: (peer, service, m) => ctx.peers.sendDatagram(peer, service, m),
      onDatagram: (service, h) => ctx.peers.onDatagram(service, h),
      close: () => ctx.peers.close(),
    };
    return calico.backend.createAgent({ ...ctx, peers });
  },
};

describe("BGP scenarios (calico)", () => {
  it("bgp-session: every session of a cold start Established and its End-of-RIB received, figures from t0", async () => {
    const report = await runBench({ backend: calico.backend, config: bgpConfig.config, configLabel: "bgp", nodes: [3], runs: 1, scenarios: ["bgp-session"] });
    const r = report.results[0]!;
    expect({ converged: r.convergedRuns, reason: r.runs[0]!.reason, notRun: r.notRun }).toEqual({ converged: 1, reason: undefined, notRun: undefined });
    const bgp = r.runs[0]!.bgp!;
    expect(bgp.sessions).toBe(6); // a full mesh of 3: each node reports its 2 sessions
    expect(bgp.endOfRibMs).toBeGreaterThanOrEqual(bgp.establishedMs);
    expect(bgp.endOfRibMs).toBeLessThanOrEqual(r.runs[0]!.virtualMs + r.quietMs);
    expect(r.bgp!.endOfRibMs.median).toBe(bgp.endOfRibMs);
    expect(r.lowerBound.messages).toBe(18);
    expect(r.deliveries.median).toBeGreaterThanOrEqual(r.lowerBound.messages);
    expect(renderMarkdown([report])).toMatch(/\| calico\/bgp \| [\d,]+ ms virt .* · 6 BGP sessions: last Established [\d,]+ ms, last End-of-RIB [\d,]+ ms \|/);
  }, 120_000);

  it("graceful-restart: no route lost at any change, the restarted node's End-of-RIB reaches every peer and flushes the stale routes", async () => {
    const report = await runBench({ backend: calico.backend, config: bgpConfig.config, configLabel: "bgp", nodes: [3], runs: 1, scenarios: ["graceful-restart"] });
    const r = report.results[0]!;
    expect({ converged: r.convergedRuns, reason: r.runs[0]!.reason }).toEqual({ converged: 1, reason: undefined });
    const bgp = r.runs[0]!.bgp!;
    expect(bgp.sessions).toBe(2); // the two other nodes' sessions with the restarted one
    expect(bgp.endOfRibMs).toBeGreaterThan(0);
    expect(bgp.endOfRibMs).toBeGreaterThanOrEqual(bgp.establishedMs);
  }, 120_000);

  it("graceful-restart: a speaker that sends Cease when it restarts loses routes and does not converge", async () => {
    const report = await runBench({ backend: calicoCeaseOnRestart, config: bgpConfig.config, configLabel: "bgp", nodes: [3], runs: 1, scenarios: ["graceful-restart"] });
    const r = report.results[0]!;
    expect(r.convergedRuns).toBe(0);
    expect(r.bgp).toBeUndefined();
    expect(r.runs[0]!.reason).toMatch(/route loss while the agent of node-3 restarted: node node-\d lost its route\(s\) to 10\.244\./);
  }, 120_000);

  it("route reflectors: bgp-session and graceful-restart converge with every client peering with the two reflectors", async () => {
    const rr = builtinTargets(calico).find((t) => t.label === "bgp-rr")!;
    const report = await runBench({ backend: rr.backend, config: rr.config, configLabel: rr.label, nodes: [4], runs: 1, scenarios: ["bgp-session", "graceful-restart"] });
    const [sessions, restart] = report.results;
    expect({ converged: sessions!.convergedRuns, reason: sessions!.runs[0]!.reason }).toEqual({ converged: 1, reason: undefined });
    // node-1 and node-2 reflect: they peer with each other and with both clients; each client with both reflectors.
    expect(sessions!.runs[0]!.bgp!.sessions).toBe(3 + 3 + 2 + 2);
    expect({ converged: restart!.convergedRuns, reason: restart!.runs[0]!.reason }).toEqual({ converged: 1, reason: undefined });
    expect(restart!.runs[0]!.bgp!.sessions).toBe(2); // node-4 is a client: the two reflectors
  }, 120_000);

  it("the CLI takes a calico route-reflector config from a file (--config, as for any backend)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cnikit-bench-rr-"));
    dirs.push(dir);
    const file = join(dir, "calico-rr.json");
    await writeFile(file, JSON.stringify(builtinTargets(calico).find((t) => t.label === "bgp-rr")!.config));
    let out = "";
    let err = "";
    const io = { stdout: (t: string) => void (out += t), stderr: (t: string) => void (err += t), cwd: resolve(import.meta.dirname, ".."), isTTY: false, env: {} };
    expect(await main(["--backend", "calico", "--config", file, "--nodes", "3", "--runs", "1", "--scenarios", "bgp-session"], io), err).toBe(0);
    // node-1 and node-2 reflect (2 sessions each), node-3 is their client (2 sessions).
    expect(out).toMatch(/\| calico\/config \| [\d,]+ ms virt .* · 6 BGP sessions: last Established/);
  }, 120_000);

  it("calico's built-in targets: each fixture mode in a full mesh and with route reflectors, side by side", () => {
    const modes = calico.configs.map((c) => c.label);
    expect(builtinTargets(calico).map((t) => t.label)).toEqual(modes.flatMap((m) => [m, `${m}-rr`]));
    for (const t of builtinTargets(calico).filter((x) => x.label.endsWith("-rr"))) {
      const docs = t.config as { kind: string; spec?: Record<string, unknown> }[];
      expect(docs.find((d) => d.kind === "BGPConfiguration")?.spec?.nodeToNodeMeshEnabled).toBe(false);
      expect(docs.filter((d) => d.kind === "Node").length).toBe(2);
      expect(() => t.backend.parseConfig(t.config)).not.toThrow();
    }
    // Other backends: their fixture modes only.
    const reference = builtinBackend("reference");
    expect(builtinTargets(reference).map((t) => t.label)).toEqual(reference.configs.map((c) => c.label));
  });
});
