import { describe, expect, it } from "vitest";
import { Harness } from "./mesh-harness.ts";

describe("mesh: connections", () => {
  it("two peers dialling each other at once end with one connection, the same on both sides", async () => {
    const h = new Harness({ n: 2 });
    await h.startAll();
    await h.until(() => h.peers.every((p) => p.mesh.connections().some((c) => c.established)), 5_000);
    await h.clock.advance(2_000);
    const [a, b] = h.peers as [typeof h.peers[0], typeof h.peers[0]];
    expect(a.mesh.connections()).toHaveLength(1);
    expect(b.mesh.connections()).toHaveLength(1);
    const ca = a.mesh.connections()[0]!;
    const cb = b.mesh.connections()[0]!;
    expect(ca.outbound).toBe(!cb.outbound);
    expect(ca.remote.name).toBe(b.mesh.self.name);
    expect(cb.remote.uid).toBe(a.mesh.self.uid);
    expect(a.mesh.nextHop(b.mesh.self.name)).toBe(b.mesh.self.name);
    await h.stopAll();
  });
});
