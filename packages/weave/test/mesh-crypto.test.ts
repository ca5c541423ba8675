/** The mesh's encrypted handshake: sealed connections, wrong / missing password, trusted subnets. */
import { describe, expect, it } from "vitest";
import { WRONG_PASSWORD } from "../src/mesh/connection.ts";
import { Harness, SetChannel } from "./mesh-harness.ts";

describe("mesh: encryption", () => {
  it("peers with one password connect encrypted and gossip through sealed messages", async () => {
    const h = new Harness({ n: 3, options: () => ({ password: "s3cret" }) });
    const chans = h.peers.map((p) => {
      const c = new SetChannel();
      return { handler: c, channel: p.mesh.channel("set", c) };
    });
    await h.startAll();
    await h.until(() => h.fullyConnected() && h.converged(), 10_000);
    for (const p of h.peers) {
      for (const c of p.mesh.connections()) expect(c.encrypted).toBe(true);
      expect(
        p.mesh
          .status()
          .filter((l) => l.includes("connection "))
          .every((l) => l.includes(" encrypted")),
      ).toBe(true);
    }
    chans[0]!.handler.items.add("x");
    chans[0]!.channel.gossip(SetChannel.encode(["x"]));
    await h.until(() => chans.every((c) => c.handler.items.has("x")), 5_000);
    await h.stopAll();
  });

  it("a wrong password is refused on both sides, and the connection maker keeps retrying", async () => {
    const h = new Harness({ n: 2, options: (i) => ({ password: i === 0 ? "right" : "wrong" }) });
    await h.startAll();
    await h.until(() => h.peers.every((p) => p.mesh.targets()[0]!.failures >= 3), 60_000);
    for (const p of h.peers) {
      expect(p.mesh.connections()).toHaveLength(0);
      expect(p.mesh.status().join("\n")).toContain(WRONG_PASSWORD);
    }
    await h.stopAll();
  });

  it("one side with a password and one without: encryption mismatch, named from each side", async () => {
    const h = new Harness({ n: 2, options: (i) => (i === 0 ? { password: "s3cret" } : {}) });
    await h.startAll();
    await h.until(() => h.peers.every((p) => p.mesh.targets()[0]!.failures >= 2), 60_000);
    expect(h.peers[0]!.mesh.status().join("\n")).toContain("encryption mismatch: n1 has no password");
    expect(h.peers[1]!.mesh.status().join("\n")).toContain("encryption mismatch: n0 requires a password");
    for (const p of h.peers) expect(p.mesh.connections()).toHaveLength(0);
    await h.stopAll();
  });

  it("peers inside each other's trusted subnets skip encryption and say so", async () => {
    const h = new Harness({ n: 2, options: () => ({ password: "s3cret", trustedSubnets: ["198.51.0.0/16"] }) });
    await h.startAll();
    await h.until(() => h.fullyConnected(), 10_000);
    for (const p of h.peers) {
      expect(p.mesh.connections()[0]!.encrypted).toBe(false);
      expect(p.mesh.status().join("\n")).toContain("plain (trusted subnet)");
    }
    await h.stopAll();
  });

  it("trust on one side only still encrypts", async () => {
    const h = new Harness({ n: 2, options: (i) => ({ password: "s3cret", ...(i === 0 ? { trustedSubnets: ["198.51.0.0/16"] } : {}) }) });
    await h.startAll();
    await h.until(() => h.fullyConnected(), 10_000);
    for (const p of h.peers) expect(p.mesh.connections()[0]!.encrypted).toBe(true);
    await h.stopAll();
  });
});
