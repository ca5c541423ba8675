/**
 * The lab's controller path on the kernel (root, real etcd): a backend with a cluster-level
 * controller (fixtures/cloud-routes.ts: the reference's agents plus a controller that routes every
 * claimed pod subnet to its node on the fabric) on two underlay subnets joined by a router. The
 * lab starts cnikit-controller in the infra namespace with the lab's fabric port; the controller
 * puts the pod-subnet routes into the router namespace; pods on the two nodes reach each other
 * through the router (the nodes have no route of their own to the other node's pods); at teardown
 * the controller is stopped by its PID and nothing of the lab is left.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { Prefix, type Backend } from "@cnikit/core";
import { listNetns } from "@cnikit/linux";
import { downLab, labDir, nsPrefix, readState, startLab } from "../src/index.ts";
import { findProcessesByMarker, pidAlive, processMatches } from "../src/system.ts";
import { bundleModule } from "./fixtures/bundle.ts";

const NAME = `c${process.pid}`;
const CONTROL = `c${process.pid}n`;
const tmp = mkdtempSync(join(tmpdir(), "cnikit-lab-controller-"));

afterAll(async () => {
  await downLab(NAME);
  await downLab(CONTROL);
  rmSync(tmp, { recursive: true, force: true });
}, 120_000);

const ip = (ns: string, ...args: string[]): string => execFileSync("ip", ["-n", ns, ...args], { encoding: "utf8" });

/** Waits until `probe` returns a value (not undefined), polling; throws with `what` after `ms`. */
async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The fixture bundled into one module cnikitd and cnikit-controller load. */
async function fixture(): Promise<{ out: string; cloudRoutes: Backend<unknown>; noCloudRoutes: Backend<unknown> }> {
  const out = join(tmp, "cloud-routes.mjs");
  bundleModule(fileURLToPath(new URL("./fixtures/cloud-routes.ts", import.meta.url)), out);
  return { out, ...((await import(out)) as { cloudRoutes: Backend<unknown>; noCloudRoutes: Backend<unknown> }) };
}

const config = { network: "10.251.0.0/16", natOutgoing: false };

describe("cnikit-controller in the lab", () => {
  it("without a controller (the control): no cnikit-controller, the router has no route to pods, pods on the two subnets do not reach each other", async () => {
    const { out, noCloudRoutes } = await fixture();
    const lab = await startLab({ name: CONTROL, backend: noCloudRoutes, backendModule: { module: out, export: "noCloudRoutes" }, backendConfig: config, nodes: 2, podsPerNode: 1 });
    try {
      const [n1, n2] = lab.plan.nodes;
      expect(n1!.subnet).not.toBe(n2!.subnet);
      const state = readState(labDir(CONTROL));
      expect(state.spec.controller).toBeUndefined();
      expect(state.resources.filter((r) => r.kind === "process" && r.role === "cnikit-controller")).toEqual([]);
      expect(ip(lab.plan.routers[0]!.ns, "route", "show")).not.toMatch(/^10\.251\./m);
      const [a, b] = lab.pods;
      expect(a!.node).not.toBe(b!.node);
      expect((await lab.probe(a!.name, b!.name, "tcp", { timeoutMs: 2000 })).ok).toBe(false);
      expect((await lab.probe(b!.name, a!.name, "ping", { timeoutMs: 2000 })).ok).toBe(false);
      await lab.down();
    } finally {
      lab.close();
    }
  }, 300_000);

  it("runs the backend's controller, whose fabric routes carry pod traffic between nodes on two subnets; stopped by PID at teardown", async () => {
    const { out, cloudRoutes } = await fixture();
    const lab = await startLab({ name: NAME, backend: cloudRoutes, backendModule: { module: out, export: "cloudRoutes" }, backendConfig: config, nodes: 2, podsPerNode: 1 });
    try {
      // Two nodes on two subnets (the backend needs no single subnet), one router between them.
      const [n1, n2] = lab.plan.nodes;
      expect(n1!.subnet).not.toBe(n2!.subnet);
      const router = lab.plan.routers[0]!;

      // The controller runs in the infra namespace, recorded with its PID, and said which backend.
      const state = readState(labDir(NAME));
      expect(state.spec.controller).toBe(true);
      const proc = state.resources.find((r) => r.kind === "process" && r.role === "cnikit-controller");
      expect(proc).toMatchObject({ kind: "process", ns: lab.plan.infra.ns });
      const pid = proc?.kind === "process" ? proc.pid : undefined;
      expect(pid).toBeDefined();
      expect(processMatches(pid!, proc!.kind === "process" ? proc!.marker : "")).toBe(true);
      expect(execFileSync("ip", ["netns", "identify", String(pid)], { encoding: "utf8" }).trim()).toBe(lab.plan.infra.ns);
      const log = join(lab.plan.stateDir, "controller", "controller.log");
      expect(readFileSync(log, "utf8")).toMatch(/cnikit-controller: ready \(backend cloud-routes, 2 members\)/);

      // Each node's pod subnet (the one its pod got an address from) is routed by the router to that node.
      const pods = lab.pods;
      expect(pods.map((p) => p.node).sort()).toEqual([n1!.name, n2!.name].sort());
      const subnetOf = async (node: string, podIp: string): Promise<string> =>
        until(`the router routes ${podIp} (on ${node})`, () => {
          const line = ip(router.ns, "-o", "route", "show")
            .split("\n")
            .find((l) => /^\d+\.\d+\.\d+\.\d+\/\d+ via /.test(l) && Prefix.parse(l.split(" ")[0]!).contains(podIp));
          return line;
        });
      for (const p of pods) {
        const node = lab.plan.nodes.find((n) => n.name === p.node)!;
        const route = await subnetOf(p.node, p.ip);
        expect(route, `router route for ${p.ip}`).toMatch(new RegExp(`^10\\.251\\.[\\d.]+/\\d+ via ${node.address.replace(/\./g, "\\.")} `));
      }
      expect(readFileSync(log, "utf8")).toMatch(/cloud-routes: routed/);

      // The nodes themselves have no route to the other node's pods: their traffic leaves by the
      // default route, to the router, which carries it by the controller's fabric routes.
      for (const [from, to] of [
        [pods[0]!, pods[1]!],
        [pods[1]!, pods[0]!],
      ] as const) {
        const node = lab.plan.nodes.find((n) => n.name === from.node)!;
        expect(ip(node.ns, "route", "get", to.ip)).toMatch(new RegExp(`via ${node.gateway!.replace(/\./g, "\\.")} dev eth0`));
      }

      // Pods and nodes reach each other (TCP, UDP, ping; pod to pod without NAT).
      const c = await lab.converge({ timeoutMs: 60_000 });
      expect(c.converged, JSON.stringify(c.matrix.failures)).toBe(true);
      const m = await lab.matrix({ egress: false });
      expect(m.failures).toEqual([]);

      // Teardown stops the controller by its PID and leaves nothing of the lab: no process that
      // was recorded (cnikit-controller, cnikitd, etcd, probe agents), no namespace, no directory.
      const recorded = readState(labDir(NAME)).resources.flatMap((r) => (r.kind === "process" ? [r.marker] : []));
      lab.close();
      const report = await downLab(NAME);
      expect(report.killed).toContain(pid);
      expect(report.leftovers).toEqual([]);
      expect(pidAlive(pid!)).toBe(false);
      expect(recorded.flatMap((marker) => findProcessesByMarker(marker))).toEqual([]);
      expect((await listNetns()).filter((ns) => ns.startsWith(`${nsPrefix(NAME)}-`))).toEqual([]);
      expect(existsSync(labDir(NAME))).toBe(false);
    } finally {
      lab.close();
    }
  }, 300_000);
});
