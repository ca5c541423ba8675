/**
 * Subnet sizing for the Azure-like backend: the arithmetic AKS users get wrong, as pure functions
 * (no I/O, no clock), shared by the config parser, the controller's reports and `cnikit-azure
 * plan-subnet`. Sources: AKS's Azure CNI sizing rule and the virtual network FAQ (cited in DESIGN.md "Sizing").
 *
 *  - `AZURE_RESERVED_PER_SUBNET` (5) and `usableAddresses(cidr)`: Azure keeps the network address,
 *    the first three hosts and the broadcast address of every subnet.
 *  - `AZURE_MIN_SUBNET_LENGTH` (29) and `AZURE_MAX_SUBNET_LENGTH` (2): the smallest subnet Azure
 *    creates is a /29 (8 addresses, 3 usable), the largest a /2 (Microsoft Learn's virtual network
 *    FAQ); `smallestFittingPrefix` answers within those.
 *  - `requiredAddresses({ nodes, maxPods, surge })`: AKS's formula (n + s) × (maxPods + 1) — each
 *    node holds its primary address plus maxPods preallocated ones, and the upgrade surge nodes
 *    need the same room.
 *  - `smallestFittingPrefix({ required })`: the longest prefix length (≤ /29) whose usable count
 *    holds `required`.
 *  - `classicJoinRefusal(...)`: AKS's "Pre-allocated IPs N exceeds IPs available M", followed by the
 *    formula with the numbers filled in and the smallest subnet that would fit; or the refusal of a
 *    join the formula allows but the subnet's free addresses do not (held outside the formula).
 *  - `sizingTable(...)` / `formatSizingTable(rows)`: the reference's worked table, as data and as
 *    aligned text with thousands separators.
 *  - `classicHeadroom(...)` / `dynamicHeadroom(...)`: exact headroom for the controller's reports
 *    (what Azure never tells you): how many more nodes fit with the surge kept free, free
 *    addresses, and for a pod subnet how many whole batches are left.
 *  - `usableStaticBlocks(cidr)` / `staticBlocksPerNode(maxPods)`: StaticBlock mode's /28 arithmetic.
 *
 * Every input error is a `ConfigError` (component `azure`) naming the argument.
 */
import { ConfigError, Prefix } from "@cnikit/core";

const C = "azure";

/** Addresses Azure reserves in every subnet: network, the first three hosts, broadcast. */
export const AZURE_RESERVED_PER_SUBNET = 5;
/** The longest prefix (smallest subnet) Azure allows: /29 (8 addresses, 3 usable). */
export const AZURE_MIN_SUBNET_LENGTH = 29;
/** The shortest prefix (largest subnet) Azure allows: /2 (Microsoft Learn, virtual network FAQ). */
export const AZURE_MAX_SUBNET_LENGTH = 2;
/** StaticBlock mode hands out /28 blocks (16 addresses). */
export const STATIC_BLOCK_LENGTH = 28;
/** Addresses per static block. */
export const STATIC_BLOCK_SIZE = 16;

function fail(field: string, rule: string, value?: unknown): never {
  throw new ConfigError(value === undefined ? { component: C, field, rule } : { component: C, field, rule, value });
}

function count(v: unknown, field: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) fail(field, `must be an integer from ${min} to ${max}`, v);
  return v;
}

/** Parses an IPv4 subnet for sizing (canonical, host bits zero). */
function subnetOf(cidr: string | Prefix, field = "subnet"): Prefix {
  const p = typeof cidr === "string" ? Prefix.parse(cidr, { component: C, field }) : cidr;
  if (p.family !== 4) fail(field, "must be an IPv4 CIDR (Azure VNet subnets for pods are IPv4 here)", p.toString());
  return p;
}

/** Thousands separators as in the reference (1,581). */
export function formatCount(n: number): string {
  const sign = n < 0 ? "-" : "";
  return sign + String(Math.abs(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** Addresses Azure lets you use in a subnet of this prefix length: 2^(32 − length) − 5, at least 0. */
export function usableForLength(length: number): number {
  count(length, "prefixLength", 0, 32);
  return Math.max(0, 2 ** (32 - length) - AZURE_RESERVED_PER_SUBNET);
}

/** Addresses Azure lets you use in `cidr` (an IPv4 subnet): its size − 5, at least 0. */
export function usableAddresses(cidr: string | Prefix): number {
  return usableForLength(subnetOf(cidr).length);
}

/** The sizing inputs every formula takes. */
export interface SizingInput {
  /** n: the most nodes the pool can reach (the autoscaler's max, not the current count). */
  nodes: number;
  /** Pods per node (each node preallocates this many addresses besides its primary). */
  maxPods: number;
  /** Upgrade-surge nodes (AKS's max surge, default 1). */
  surge: number;
}

function checkInput(input: SizingInput): SizingInput {
  return {
    nodes: count(input.nodes, "nodes"),
    maxPods: count(input.maxPods, "maxPods", 1, 250),
    surge: count(input.surge, "surge"),
  };
}

/** AKS's formula: (nodes + surge) × (maxPods + 1). */
export function requiredAddresses(input: SizingInput): number {
  const { nodes, maxPods, surge } = checkInput(input);
  return (nodes + surge) * (maxPods + 1);
}

/**
 * The longest prefix length whose usable count (size − 5) holds `required`, never longer than
 * /29 (Azure's smallest subnet) and never shorter than /2 (its largest).
 * @throws ConfigError (field `required`) when not even a /2 would hold it.
 */
export function smallestFittingPrefix(input: { required: number }): number {
  const required = count(input.required, "required");
  for (let length = AZURE_MIN_SUBNET_LENGTH; length >= AZURE_MAX_SUBNET_LENGTH; length--) {
    if (usableForLength(length) >= required) return length;
  }
  return fail("required", `no Azure subnet (/${AZURE_MAX_SUBNET_LENGTH} at the largest) holds ${formatCount(required)} usable addresses`, required);
}

const plural = (n: number, word: string): string => `${formatCount(n)} ${word}${n === 1 ? "" : "s"}`;

/** Inputs of `classicJoinRefusal`. */
export interface ClassicJoinInput extends SizingInput {
  /** The node subnet the pool draws from (canonical IPv4 CIDR). */
  subnet: string;
  /** Nodes in the subnet once the join is done (the joining node counted), the formula's n. */
  nodes: number;
  /**
   * Addresses of the subnet held by no one right now (usable − nodes' primary addresses − every
   * reservation), the joining node's own primary address already counted as held: the join needs
   * `maxPods` of them. Absent: only the formula is checked.
   */
  free?: number;
}

/**
 * Whether a classic (Node Subnet) join that brings the subnet to `nodes` nodes fits: undefined when
 * it does, else the refusal text, starting exactly as AKS's "Pre-allocated IPs N exceeds IPs
 * available M" (N = the formula's requirement, M = the subnet's usable count), then the formula
 * with the numbers and the smallest subnet that fits, e.g.
 * `Pre-allocated IPs 310 exceeds IPs available 251: (n + 1) × (maxPods + 1) = (9 + 1) × (30 + 1) =
 * 310 with n = 9 nodes and 1 surge node; the smallest subnet that fits is a /23 (507 usable)`.
 * When the formula fits but fewer than `maxPods` addresses are free (addresses held outside the
 * formula: other pools, load balancers, leaks), the text is
 * `Pre-allocated IPs 30 exceeds IPs available 12: the join needs maxPods = 30 addresses for its
 * pods but only 12 of the subnet's 251 usable addresses are free (the formula allows 7 nodes)`.
 */
export function classicJoinRefusal(input: ClassicJoinInput): string | undefined {
  const { nodes, maxPods, surge } = checkInput(input);
  const usable = usableAddresses(subnetOf(input.subnet));
  const required = (nodes + surge) * (maxPods + 1);
  if (required > usable) {
    const fit = smallestFittingPrefix({ required });
    return (
      `Pre-allocated IPs ${required} exceeds IPs available ${usable}: ` +
      `(n + ${surge}) × (maxPods + 1) = (${nodes} + ${surge}) × (${maxPods} + 1) = ${formatCount(required)} ` +
      `with n = ${plural(nodes, "node")} and ${plural(surge, "surge node")}; ` +
      `the smallest subnet that fits is a /${fit} (${formatCount(usableForLength(fit))} usable)`
    );
  }
  if (input.free !== undefined) {
    const free = count(input.free, "free");
    if (free < maxPods) {
      const formulaNodes = Math.floor(usable / (maxPods + 1)) - surge;
      return (
        `Pre-allocated IPs ${maxPods} exceeds IPs available ${free}: the join needs maxPods = ${maxPods} addresses for its pods ` +
        `but only ${formatCount(free)} of the subnet's ${formatCount(usable)} usable addresses are free (the formula allows ${plural(formulaNodes, "node")})`
      );
    }
  }
  return undefined;
}

/** One row of the worked sizing table. */
export interface SizingRow {
  /** What the row is, as in the reference ("node addresses, incl. surge", "/22 usable"). */
  step: string;
  /** The arithmetic with its operands ("50 + 1", "51 × 30", "1,024 − 5"). */
  formula: string;
  value: number;
  /** Prefix rows: the candidate subnet's length. */
  prefixLength?: number;
  /** Prefix rows: whether it holds the requirement. */
  verdict?: "too small" | "fits";
  /** Prefix rows that fit: usable − required. */
  spare?: number;
  /** An equivalent form worth showing ("= 51 × 31"). */
  note?: string;
}

/**
 * The reference's worked table for (nodes, maxPods, surge): node addresses incl. surge, pod
 * addresses, required, plus Azure's reserved, then the largest prefix that is too small (absent
 * when the fit is already Azure's smallest, /29) and the smallest that fits, with its spare.
 */
export function sizingTable(input: SizingInput): SizingRow[] {
  const { nodes, maxPods, surge } = checkInput(input);
  const nodeAddresses = nodes + surge;
  const podAddresses = nodeAddresses * maxPods;
  const required = nodeAddresses + podAddresses;
  const fit = smallestFittingPrefix({ required });
  const rows: SizingRow[] = [
    { step: "node addresses, incl. surge", formula: `${formatCount(nodes)} + ${formatCount(surge)}`, value: nodeAddresses },
    { step: "pod addresses", formula: `${formatCount(nodeAddresses)} × ${maxPods}`, value: podAddresses },
    { step: "required", formula: `${formatCount(nodeAddresses)} + ${formatCount(podAddresses)}`, value: required, note: `= ${formatCount(nodeAddresses)} × ${maxPods + 1}` },
    { step: "plus Azure reserved", formula: `${formatCount(required)} + ${AZURE_RESERVED_PER_SUBNET}`, value: required + AZURE_RESERVED_PER_SUBNET },
  ];
  const prefixRow = (length: number): SizingRow => {
    const usable = usableForLength(length);
    const fits = usable >= required;
    const row: SizingRow = {
      step: `/${length} usable`,
      formula: `${formatCount(2 ** (32 - length))} − ${AZURE_RESERVED_PER_SUBNET}`,
      value: usable,
      prefixLength: length,
      verdict: fits ? "fits" : "too small",
    };
    if (fits) row.spare = usable - required;
    return row;
  };
  if (fit < AZURE_MIN_SUBNET_LENGTH) rows.push(prefixRow(fit + 1));
  rows.push(prefixRow(fit));
  return rows;
}

/**
 * The table as aligned text: step, then `formula = value`, then the verdict, e.g.
 * `required                      51 + 1,530   =  1,581  (= 51 × 31)` and
 * `/21 usable                    2,048 − 5    =  2,043  → fits (462 spare)`.
 */
export function formatSizingTable(rows: readonly SizingRow[]): string {
  const tail = (r: SizingRow): string => {
    if (r.verdict === "fits") return `→ fits (${formatCount(r.spare ?? 0)} spare)`;
    if (r.verdict === "too small") return "→ too small";
    return r.note === undefined ? "" : `(${r.note})`;
  };
  const header = { step: "step", formula: "formula", value: "value" };
  const cells = rows.map((r) => ({ step: r.step, formula: r.formula, value: formatCount(r.value), tail: tail(r) }));
  const w = {
    step: Math.max(header.step.length, ...cells.map((c) => c.step.length)),
    formula: Math.max(header.formula.length, ...cells.map((c) => c.formula.length)),
    value: Math.max(header.value.length, ...cells.map((c) => c.value.length)),
  };
  const line = (step: string, formula: string, eq: string, value: string, rest: string): string =>
    `${step.padEnd(w.step)}  ${formula.padEnd(w.formula)}  ${eq}  ${value.padStart(w.value)}${rest === "" ? "" : `  ${rest}`}`.trimEnd();
  return [line(header.step, header.formula, " ", header.value, ""), ...cells.map((c) => line(c.step, c.formula, "=", c.value, c.tail))].join("\n");
}

/** Exact headroom of a classic (Node Subnet) subnet. */
export interface ClassicHeadroom {
  subnet: string;
  usable: number;
  /** Addresses held now (primaries + preallocations + anything else). */
  used: number;
  /** usable − used (at least 0). */
  free: number;
  /** 1 + maxPods: what one more node takes. */
  perNode: number;
  /** surge × perNode: kept free for upgrades. */
  surgeReserve: number;
  /** How many more nodes can join with the surge reserve kept free. */
  nodesThatFit: number;
  /** Free addresses left once those nodes and the surge are placed (not enough for another node). */
  spare: number;
  /** The surge reserve is not free: an upgrade now would be refused. */
  surgeShort: boolean;
}

/**
 * Exact headroom of a classic subnet with `nodes` nodes of 1 + maxPods each (or `used` addresses
 * held, when the caller knows better, e.g. addresses held outside the formula).
 */
export function classicHeadroom(input: SizingInput & { subnet: string; used?: number }): ClassicHeadroom {
  const { nodes, maxPods, surge } = checkInput(input);
  const subnet = subnetOf(input.subnet);
  const usable = usableAddresses(subnet);
  const perNode = maxPods + 1;
  const used = input.used === undefined ? nodes * perNode : count(input.used, "used");
  const free = Math.max(0, usable - used);
  const surgeReserve = surge * perNode;
  const beyondSurge = free - surgeReserve;
  const nodesThatFit = beyondSurge > 0 ? Math.floor(beyondSurge / perNode) : 0;
  return {
    subnet: subnet.toString(),
    usable,
    used,
    free,
    perNode,
    surgeReserve,
    nodesThatFit,
    spare: Math.max(0, beyondSurge - nodesThatFit * perNode),
    surgeShort: beyondSurge < 0,
  };
}

/** Headroom of a dynamic (Pod Subnet) pod subnet. */
export interface DynamicHeadroom {
  subnet: string;
  usable: number;
  assigned: number;
  /** usable − assigned (at least 0). */
  free: number;
  /** Whole batches still assignable. */
  batches: number;
}

/** Free addresses of a pod subnet with `assigned` addresses given to nodes, and how many batches of `batchSize` that is. */
export function dynamicHeadroom(input: { subnet: string; assigned: number; batchSize: number }): DynamicHeadroom {
  const subnet = subnetOf(input.subnet);
  const assigned = count(input.assigned, "assigned");
  const batchSize = count(input.batchSize, "batchSize", 1);
  const usable = usableAddresses(subnet);
  const free = Math.max(0, usable - assigned);
  return { subnet: subnet.toString(), usable, assigned, free, batches: Math.floor(free / batchSize) };
}

/**
 * Whole /28 blocks of `cidr` that hold none of Azure's 5 reserved addresses: the first block holds
 * the network address and the first three hosts, the last block the broadcast, so a subnet of
 * 2^k blocks has 2^k − 2 (0 for a /27 or a /28; longer than /28 holds no block).
 */
export function usableStaticBlocks(cidr: string | Prefix): number {
  const p = subnetOf(cidr);
  if (p.length > STATIC_BLOCK_LENGTH) return 0;
  return Math.max(0, 2 ** (STATIC_BLOCK_LENGTH - p.length) - 2);
}

/** /28 blocks a StaticBlock node gets up front: ceil(maxPods / 16). */
export function staticBlocksPerNode(maxPods: number): number {
  return Math.ceil(count(maxPods, "maxPods", 1, 250) / STATIC_BLOCK_SIZE);
}
