/**
 * The reachability matrix of a lab and how it prints. Pure: `Lab.matrix()` fills it with probes;
 * this file judges the cells (reached when expected, no NAT between pods) and renders the table.
 */
import { PROBE_PROTOS, type ProbeProto, type ProbeResult } from "./probe.ts";

/** An endpoint of the matrix: a pod or a node. */
export interface MatrixEndpoint {
  name: string;
  kind: "pod" | "node";
  address: string;
}

/** One ordered pair. */
export interface MatrixCell {
  from: string;
  to: string;
  /** Whether this pair must reach (every pod↔pod, node→pod and pod→node pair of a working lab). */
  expected: boolean;
  /** Whether the receiver must see the sender's own address (pod→pod: no NAT between pods). */
  noNat: boolean;
  /** One result per protocol probed (all three unless the matrix was asked for fewer). */
  results: Partial<Record<ProbeProto, ProbeResult>>;
}

/** A cell that broke a rule. */
export interface MatrixFailure {
  from: string;
  to: string;
  proto: ProbeProto;
  /** `unreachable`: expected to reach and did not; `nat`: reached, but the receiver saw another source. */
  kind: "unreachable" | "nat";
  detail: string;
}

/** Pod egress to a host outside the cluster, judged against the backend's NAT rule. */
export interface EgressResult {
  pod: string;
  external: string;
  result: ProbeResult;
  /** The source the external host must see: the node's address (natOutgoing) or the pod's. */
  expectedSource: string;
  ok: boolean;
}

/** The whole matrix. */
export interface ReachMatrix {
  sources: MatrixEndpoint[];
  destinations: MatrixEndpoint[];
  /** `cells[i][j]`: sources[i] → destinations[j]; undefined on the diagonal and node→node. */
  cells: (MatrixCell | undefined)[][];
  egress: EgressResult[];
  failures: MatrixFailure[];
  /** Whether every rule holds. */
  ok: boolean;
}

/** Whether the pair `from → to` is probed: not the diagonal, not node → node (the underlay). */
export function probedPair(from: MatrixEndpoint, to: MatrixEndpoint): boolean {
  return from.name !== to.name && !(from.kind === "node" && to.kind === "node");
}

/** The failures of one cell: unreachable when expected; a NAT'ed source on pod → pod. */
export function judgeCell(cell: MatrixCell, fromAddress: string): MatrixFailure[] {
  const out: MatrixFailure[] = [];
  for (const proto of PROBE_PROTOS) {
    const r = cell.results[proto];
    if (r === undefined) continue;
    if (!r.ok) {
      if (cell.expected) out.push({ from: cell.from, to: cell.to, proto, kind: "unreachable", detail: r.error ?? "no answer" });
      continue;
    }
    if (cell.noNat && proto !== "ping" && r.seen !== undefined && r.seen !== fromAddress) {
      out.push({ from: cell.from, to: cell.to, proto, kind: "nat", detail: `receiver saw ${r.seen}, sender is ${fromAddress}` });
    }
  }
  return out;
}

/** Assembles a matrix from probed cells and egress results, judging every cell. */
export function buildMatrix(init: { sources: MatrixEndpoint[]; destinations: MatrixEndpoint[]; cells: (MatrixCell | undefined)[][]; egress?: EgressResult[] }): ReachMatrix {
  const failures: MatrixFailure[] = [];
  init.cells.forEach((row, i) => {
    for (const cell of row) if (cell) failures.push(...judgeCell(cell, init.sources[i]!.address));
  });
  const egress = init.egress ?? [];
  return { ...init, egress, failures, ok: failures.length === 0 && egress.every((e) => e.ok) };
}

const MARK = { ok: "✓", fail: "✗" };

function cellText(cell: MatrixCell | undefined): string {
  if (!cell) return "·";
  return PROBE_PROTOS.map((p) => {
    const r = cell.results[p];
    return r === undefined ? "-" : r.ok ? MARK.ok : MARK.fail;
  }).join("");
}

function pad(s: string, width: number): string {
  return s + " ".repeat(Math.max(0, width - [...s].length));
}

/**
 * Renders the matrix as text: rows are sources, columns destinations, each cell three marks
 * (TCP, UDP, ping: ✓ reached, ✗ not), then egress, the failures and a one-line summary.
 */
export function formatMatrix(m: ReachMatrix): string {
  const lines: string[] = [];
  const rowW = Math.max(4, ...m.sources.map((s) => s.name.length));
  const colW = m.destinations.map((d) => Math.max(3, d.name.length));
  lines.push(`cells: TCP UDP ping (${MARK.ok} reached, ${MARK.fail} not, - not asked, · pair not probed)`);
  lines.push(`${pad("from\\to", rowW)}  ${m.destinations.map((d, j) => pad(d.name, colW[j]!)).join("  ")}`);
  m.sources.forEach((s, i) => {
    lines.push(`${pad(s.name, rowW)}  ${m.destinations.map((_, j) => pad(cellText(m.cells[i]![j]), colW[j]!)).join("  ")}`);
  });
  if (m.egress.length > 0) {
    lines.push("");
    lines.push("egress (TCP to a host outside the cluster):");
    for (const e of m.egress) {
      const seen = e.result.ok ? `seen as ${e.result.seen ?? "?"}` : `not reached (${e.result.error ?? "no answer"})`;
      lines.push(`  ${e.ok ? MARK.ok : MARK.fail} ${e.pod} → ${e.external}: ${seen}, expected ${e.expectedSource}`);
    }
  }
  if (m.failures.length > 0) {
    lines.push("");
    lines.push("failures:");
    const byPair = new Map<string, MatrixFailure[]>();
    for (const f of m.failures) {
      const key = `${f.from} → ${f.to}`;
      byPair.set(key, [...(byPair.get(key) ?? []), f]);
    }
    for (const [pair, fs] of byPair) {
      lines.push(`  ${pair}: ${fs.map((f) => `${f.proto} ${f.kind === "nat" ? "NAT between pods" : "unreachable"} (${f.detail})`).join(", ")}`);
    }
  }
  const cells = m.cells.flat().filter((c): c is MatrixCell => c !== undefined);
  const protos = PROBE_PROTOS.filter((p) => cells.some((c) => c.results[p] !== undefined));
  const probes = cells.reduce((n, c) => n + Object.keys(c.results).length, 0);
  const reached = cells.reduce((n, c) => n + PROBE_PROTOS.filter((p) => c.results[p]?.ok === true).length, 0);
  const natCount = m.failures.filter((f) => f.kind === "nat").length;
  const egressBad = m.egress.filter((e) => !e.ok).length;
  lines.push("");
  lines.push(
    `${m.ok ? "OK" : "FAILED"}: ${cells.length} pairs × ${protos.length} protocol${protos.length === 1 ? "" : "s"} = ${probes} probes, ${reached} reached, ` +
      `${m.failures.length - natCount} expected but unreachable, ${natCount} NAT'ed between pods` +
      (m.egress.length > 0 ? `, egress ${m.egress.length - egressBad}/${m.egress.length} as the NAT rule says` : ""),
  );
  return lines.join("\n");
}
