// The agent's own behaviour beyond the suite: an ADD while the ring cannot agree waits a bounded
// time and answers 11 with the ring's state (never hangs), then succeeds once a quorum talks.
import { describe, expect, it } from "vitest";
import { SimCluster } from "@cnikit/sim";
import { BRIDGE_WAIT_MS } from "../src/agent.ts";
import { weave } from "../src/index.ts";

/** Runs the virtual clock until `work` settles. */
async function drive<T>(c: SimCluster<unknown>, work: Promise<T>): Promise<T> {
  let done = false;
  const settled = work.finally(() => (done = true));
  settled.catch(() => undefined);
  for (let i = 0; !done && i < 2_000; i++) await c.clock.advance(100);
  return settled;
}

describe("weave agent", () => {
  it("an ADD on a lone node of a consensus=3 cluster answers 11 with the ring's state after BRIDGE_WAIT_MS, and succeeds once a second node makes the quorum", async () => {
    const c = SimCluster.create({ backend: weave, config: weave.parseConfig({ IPALLOC_INIT: "consensus=3" }), seed: 1 }) as SimCluster<unknown>;
    try {
      const [n1] = await drive(c, c.addNodes(1));
      const started = c.clock.now();
      await expect(drive(c, c.addPod(n1!.name))).rejects.toMatchObject({
        code: 11,
        message: expect.stringMatching(/no address on the pod network yet \(IPAM: .*awaiting consensus \(quorum: 2, known: 1\)/),
      });
      expect(c.clock.now() - started).toBeGreaterThanOrEqual(BRIDGE_WAIT_MS);
      expect(c.dataplane(n1!.name).pods).toEqual([]);
      await drive(c, c.addNode());
      const pod = await drive(c, c.addPod(n1!.name));
      expect(pod.addresses[0]).toMatch(/^10\.(3[2-9]|4[0-7])\./);
    } finally {
      await c.close();
    }
  }, 120_000);
});
