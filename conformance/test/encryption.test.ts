import { describe, expect, it } from "vitest";
import type { Hop, PacketResult } from "@cnikit/sim";
import { plaintextProblems } from "../src/checks/encryption.ts";

const PAIR = "tcp/80 from pod a on node n1 to pod b on node n2";

function hop(node: string, stage: string, payload?: "plaintext" | "encrypted"): Hop {
  return payload === undefined ? { node, stage, detail: `${stage} at ${node}` } : { node, stage, detail: `${stage} at ${node} (${payload})`, payload };
}

function delivered(path: Hop[], replyPath?: Hop[]): PacketResult {
  return replyPath === undefined ? { delivered: true, destination: "10.0.2.2", path } : { delivered: true, destination: "10.0.2.2", path, replyDelivered: true, replyPath };
}

describe("plaintextProblems (section G in the simulator)", () => {
  it("every underlay hop encrypted, both ways: nothing to report", () => {
    const path = [hop("n1", "sleeve-encap"), hop("n1", "underlay", "encrypted"), hop("r1", "underlay", "encrypted"), hop("n2", "deliver")];
    const reply = [hop("n2", "underlay", "encrypted")];
    expect(plaintextProblems(PAIR, delivered(path, reply))).toEqual([]);
  });

  it("a plaintext hop is named with the pair, where it is and its detail", () => {
    const problems = plaintextProblems(PAIR, delivered([hop("n1", "underlay", "encrypted"), hop("r1", "underlay", "plaintext")]));
    expect(problems).toEqual([`${PAIR} crosses the underlay at r1 with plaintext payload: underlay at r1 (plaintext)`]);
  });

  it("a plaintext hop on the reply is named as the reply's", () => {
    const problems = plaintextProblems(PAIR, delivered([hop("n1", "underlay", "encrypted")], [hop("n2", "underlay", "plaintext")]));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(`${PAIR} (reply) crosses the underlay at n2 with plaintext payload`);
  });

  it("an underlay hop that does not say its payload state fails", () => {
    expect(plaintextProblems(PAIR, delivered([hop("n1", "underlay")]))[0]).toContain("with an unmarked payload");
  });

  it("a cross-node path with no underlay hop fails: nothing shows it was encrypted", () => {
    expect(plaintextProblems(PAIR, delivered([hop("n1", "route"), hop("n2", "deliver")]))).toEqual([
      `${PAIR} reaches another node without an underlay hop in its path: nothing shows it was encrypted`,
    ]);
  });

  it("an undelivered packet fails with the walk's reason, and what it leaked before the drop is named too", () => {
    const r: PacketResult = { delivered: false, destination: "10.0.2.2", path: [hop("n1", "underlay", "plaintext"), hop("n2", "fdb")], reason: "no FDB entry at node n2" };
    expect(plaintextProblems(PAIR, r)).toEqual([
      `${PAIR} crosses the underlay at n1 with plaintext payload: underlay at n1 (plaintext)`,
      `${PAIR} is not delivered (no FDB entry at node n2): nothing shows it crosses the underlay encrypted`,
    ]);
    expect(plaintextProblems(PAIR, { delivered: false, destination: "10.0.2.2", path: [] })).toEqual([`${PAIR} is not delivered (no reason given): nothing shows it crosses the underlay encrypted`]);
  });
});
