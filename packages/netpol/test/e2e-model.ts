/**
 * The upstream e2e model: namespaces x, y, z (labelled `ns: <name>`), pods a, b, c in each
 * (labelled `pod: <name>`), every pod serving ports 80 and 81 over TCP, UDP and SCTP with the
 * upstream port names `serve-<port>-<protocol>`. Addresses: namespace x is 10.244.1.0/24, y
 * 10.244.2.0/24, z 10.244.3.0/24; pod a is .10, b .11, c .12. Pods a run on node-a, b on node-b,
 * c on node-c (the sim test uses three nodes; the kernel test one).
 *
 * Expected matrices are written as truth tables, one line per sending pod in the order
 * x/a x/b x/c y/a y/b y/c z/a z/b z/c, nine symbols per line for the receivers in the same
 * order (grouped by namespace): `.` allowed, `X` denied.
 */
import { parsePolicies, type Cluster, type ClusterPod, type PolicyProtocol, type Probe } from "../src/index.ts";

export const NAMESPACES = ["x", "y", "z"] as const;
export const PODS = ["a", "b", "c"] as const;
export const POD_IDS = NAMESPACES.flatMap((n) => PODS.map((p) => `${n}/${p}`));
export const PROBES: Probe[] = (["TCP", "UDP", "SCTP"] as const).flatMap((protocol) => [80, 81].map((port) => ({ protocol, port })));

export function podIp(ns: string, pod: string): string {
  return `10.244.${NAMESPACES.indexOf(ns as "x") + 1}.${10 + PODS.indexOf(pod as "a")}`;
}

/** The model cluster; `edit` may change labels and ports (label-change cases). */
export function e2eCluster(edit?: (c: Cluster) => void): Cluster {
  const cluster: Cluster = {
    namespaces: NAMESPACES.map((name) => ({ name, labels: { ns: name, "kubernetes.io/metadata.name": name } })),
    pods: NAMESPACES.flatMap((ns) =>
      PODS.map((name): ClusterPod => ({
        namespace: ns,
        name,
        labels: { pod: name },
        ips: [podIp(ns, name)],
        ports: (["TCP", "UDP", "SCTP"] as const).flatMap((protocol) => [80, 81].map((port) => ({ name: `serve-${port}-${protocol.toLowerCase()}`, containerPort: port, protocol }))),
        node: `node-${name}`,
        key: `${ns}-${name}/eth0`,
        hostIf: `v${ns}${name}`,
      })),
    ),
  };
  edit?.(cluster);
  return cluster;
}

export function pod(c: Cluster, id: string): ClusterPod {
  const p = c.pods.find((q) => `${q.namespace}/${q.name}` === id);
  if (!p) throw new Error(`no pod ${id}`);
  return p;
}

/** Parses a truth table into `allowed[from][to]`; checks the row labels and widths. */
export function table(text: string): boolean[][] {
  const lines = text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "");
  if (lines.length !== 9) throw new Error(`a matrix has 9 rows, got ${lines.length}:\n${text}`);
  return lines.map((line, i) => {
    const [label, ...rest] = line.split(/\s+/);
    if (label !== POD_IDS[i]) throw new Error(`row ${i} must be labelled ${POD_IDS[i]}, got ${label}`);
    const cells = rest.join("");
    if (!/^[.X]{9}$/.test(cells)) throw new Error(`row ${label} must have 9 cells of . or X, got "${cells}"`);
    return [...cells].map((ch) => ch === ".");
  });
}

/** One matrix case. `expect` keys: `TCP/80` (exact), `TCP/*`, `*\/80` or `*` (the rest). */
export interface MatrixCase {
  name: string;
  policies: string;
  edit?: (c: Cluster) => void;
  expect: Record<string, string>;
}

export function expectedFor(c: MatrixCase, probe: Probe): boolean[][] {
  const keys = [`${probe.protocol}/${probe.port}`, `${probe.protocol}/*`, `*/${probe.port}`, "*"];
  for (const k of keys) if (c.expect[k] !== undefined) return table(c.expect[k]);
  throw new Error(`case ${c.name} has no expectation for ${probe.protocol}/${probe.port}`);
}

export function policiesOf(c: MatrixCase): ReturnType<typeof parsePolicies> {
  return parsePolicies(c.policies, c.name);
}

/** Renders a boolean matrix in the truth-table form (for failure messages). */
export function showTable(m: boolean[][]): string {
  return m
    .map(
      (row, i) =>
        `${POD_IDS[i]} ${[0, 3, 6]
          .map((k) =>
            row
              .slice(k, k + 3)
              .map((b) => (b ? "." : "X"))
              .join(""),
          )
          .join(" ")}`,
    )
    .join("\n");
}

export function protoLower(p: PolicyProtocol): "tcp" | "udp" | "sctp" {
  return p === "TCP" ? "tcp" : p === "UDP" ? "udp" : "sctp";
}
