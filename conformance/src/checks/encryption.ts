/**
 * Section G in the simulator: pod-to-pod traffic that crosses the underlay between nodes carries no
 * plaintext payload, for a backend that claims `capabilities.encryption` with a config whose
 * summary does not say `encrypted: false` (Weave without a password: "not claimed").
 *
 * For every ordered pair of the shared fixture's pods on different nodes and each protocol the
 * suite probes (`ENCRYPTION_PROBES`: TCP 80 as the reachability checks, UDP 53 as the MTU checks,
 * ICMP echo; SCTP is not simulated), the packet is walked with its path recorded, and every hop of
 * the request and of its reply that crosses the underlay (stage "underlay") must say its payload
 * was "encrypted" (the simulator marks an outer packet encrypted when an encrypting sleeve made it,
 * or when it carries an already encrypted packet). A hop that says "plaintext", or says nothing,
 * fails the check, naming the pair, the protocol, where (node or router) and the hop — hops before a
 * drop included, since what crossed the wire leaked even if it never arrived; so does a delivered
 * cross-node packet whose path shows no underlay hop at all (nothing shows it was encrypted) and a
 * packet that is not delivered (the reachability checks say why; this one cannot vouch for it).
 *
 * Not checked here: "a peer without the shared secret cannot join or read" — that is the backend's
 * own handshake (for weave, the mesh handshake tests in packages/weave: a wrong or missing password
 * is refused with a clear reason, and its session keys open nothing).
 *
 * On the kernel (`--dataplane linux`) the same id runs in the lab's driver
 * (packages/lab/src/conformance-linux.ts, capture in packages/lab/src/capture.ts), gated exactly as
 * here: for a bounded sample of ordered cross-node pod pairs (every pair of a 2-node lab with 2 pods
 * per node), tcpdump captures every node's underlay interface while the pods exchange a random
 * marker over TCP and UDP (sent and echoed back); the check fails when the marker, raw or in hex,
 * is in any captured packet (naming pair, protocol, node and the outer packet), when the exchange
 * does not complete, and when a capture of either node of the pair saw no packet of the exchange
 * in either direction (packets between the two nodes long enough to carry the padded payload: it
 * must prove it can see). ICMP is not exchanged there.
 */
import type { Family, Protocol } from "@cnikit/core";
import type { Hop, PacketResult, SimPod } from "@cnikit/sim";
import { SOURCES, fail, notApplicable, pass } from "../check.ts";
import type { CheckDefinition } from "../check.ts";
import { describePod, podEndpoint, summarizeProblems } from "../harness.ts";

/** The probes of section G: what the other simulator checks send between pods. */
export const ENCRYPTION_PROBES: readonly { protocol: Protocol; port?: number }[] = [{ protocol: "tcp", port: 80 }, { protocol: "udp", port: 53 }, { protocol: "icmp" }];

function probeText(p: { protocol: Protocol; port?: number }): string {
  return p.port === undefined ? p.protocol : `${p.protocol}/${p.port}`;
}

/** The address families of a pod's routable addresses (link-local left out). */
function familiesOf(pod: SimPod): Family[] {
  const out: Family[] = [];
  for (const a of pod.addresses) {
    if (/^fe[89ab]/i.test(a) || a.startsWith("169.254.")) continue;
    const f: Family = a.includes(":") ? 6 : 4;
    if (!out.includes(f)) out.push(f);
  }
  return out;
}

/** What is wrong with one walked packet between pods on different nodes (empty when all is well). */
export function plaintextProblems(pair: string, r: PacketResult): string[] {
  const out: string[] = [];
  const legs: [string, Hop[] | undefined][] = [
    ["", r.path],
    [" (reply)", r.replyPath],
  ];
  let underlayHops = 0;
  // Hops before a drop count too: what crossed the wire in plaintext leaked even if it never arrived.
  for (const [leg, path] of legs) {
    for (const hop of path ?? []) {
      if (hop.stage !== "underlay") continue;
      underlayHops++;
      if (hop.payload !== "encrypted") {
        out.push(`${pair}${leg} crosses the underlay at ${hop.node} with ${hop.payload ?? "an unmarked"} payload: ${hop.detail}`);
      }
    }
  }
  if (!r.delivered) out.push(`${pair} is not delivered (${r.reason ?? "no reason given"}): nothing shows it crosses the underlay encrypted`);
  else if (underlayHops === 0) out.push(`${pair} reaches another node without an underlay hop in its path: nothing shows it was encrypted`);
  return out;
}

export const encryptionChecks: CheckDefinition[] = [
  {
    id: "encryption.no-plaintext",
    section: "G",
    rule: "Pod traffic between nodes carries no plaintext payload on the underlay (every protocol the suite probes, both directions); a peer without the secret cannot join or read (the backend's handshake tests).",
    source: SOURCES.encryption,
    required: true,
    // Every ordered pair of pods × 3 probes: ~270 000 walks at 100 nodes (~20 s on an idle core).
    budgetMs: 120_000,
    gate: (ctx) => {
      if (!ctx.backend.capabilities.encryption) return { status: "not claimed", reason: "capabilities.encryption is false" };
      // A backend that can encrypt, but not with this config (Weave without a password).
      if (ctx.summary.encrypted === false) return { status: "not claimed", reason: "this config does not encrypt (summarize says encrypted: false)" };
      return undefined;
    },
    run: async (env) => {
      const { h, pods } = await env.fixture();
      const start = performance.now();
      const problems: string[] = [];
      let probes = 0;
      let failed = 0;
      const pairs: [SimPod, SimPod][] = [];
      for (const from of pods) for (const to of pods) if (from.node !== to.node) pairs.push([from, to]);
      for (const [from, to] of pairs) {
        // Each address family the two pods share (both of a dual-stack pair).
        const families = familiesOf(to).filter((f) => familiesOf(from).includes(f));
        for (const family of families) {
          for (const probe of ENCRYPTION_PROBES) {
            const r = h.cluster.send(podEndpoint(from), podEndpoint(to), probe.port === undefined ? { protocol: probe.protocol, family } : { protocol: probe.protocol, port: probe.port, family });
            const what = `${families.length > 1 ? `IPv${family} ` : ""}${probeText(probe)} from ${describePod(from)} to ${describePod(to)}`;
            const found = plaintextProblems(what, r);
            probes++;
            if (found.length > 0) failed++;
            problems.push(...found);
          }
        }
      }
      const metrics = { wallMs: performance.now() - start };
      if (probes === 0) return notApplicable(`the fixture has no two pods on different nodes sharing an address family (${env.nodes} node(s)): no pod traffic crosses the underlay`, { metrics });
      if (failed > 0) return fail(`${failed} of ${probes} cross-node probes are not shown encrypted on the underlay: ${summarizeProblems(problems)}`, { metrics });
      return pass({ metrics });
    },
  },
];
