/**
 * Types of the conformance suite: check definitions, results and the JSON report.
 */
import type { Backend, Encapsulation, Family, NetworkSummary } from "@cnikit/core";
import type { StoreProvider } from "./external-store.ts";
import type { NodeMetadata, SimTopology } from "@cnikit/sim";

/** Sections of conformance.md. */
export const Section = {
  /** Kubernetes networking model. */
  A: "A",
  /** CNI lifecycle rules. */
  B: "B",
  /** Config. */
  C: "C",
  /** Dynamics and convergence. */
  D: "D",
  /** Faults. */
  E: "E",
  /** NetworkPolicy. */
  F: "F",
  /** Encryption. */
  G: "G",
  /** The suite checks itself (run by the suite's own tests, not per backend). */
  H: "H",
  /** Real dataplane. */
  I: "I",
} as const;
export type Section = (typeof Section)[keyof typeof Section];

export const SECTION_TITLES: Record<Section, string> = {
  A: "Kubernetes networking model",
  B: "CNI lifecycle",
  C: "Config",
  D: "Dynamics and convergence",
  E: "Faults",
  F: "NetworkPolicy",
  G: "Encryption",
  H: "The suite checks itself",
  I: "Real dataplane",
};

export const CheckStatus = {
  passed: "passed",
  failed: "failed",
  notClaimed: "not claimed",
  notRun: "not run",
  /**
   * The scenario ran but could not exercise the rule on this backend (e.g. a message-fault check on
   * a backend that exchanged no peer messages). Never counted as passed.
   */
  notApplicable: "not applicable",
  error: "error",
} as const;
export type CheckStatus = (typeof CheckStatus)[keyof typeof CheckStatus];

/**
 * Figures a check records (dynamics checks: the convergence time of the scenario). A figure the
 * check did not measure is absent (never 0): the table shows it as "—".
 */
export interface CheckMetrics {
  /** Virtual time (ms): the convergence time for dynamics checks, else the virtual time the check used. */
  virtualMs?: number;
  /** Wall time (ms) of the same span. */
  wallMs: number;
  /** Peer messages sent during the span (MemoryNetwork stats). */
  messages?: number;
  /** Peer payload bytes sent during the span. */
  bytes?: number;
  /** Datastore operations during the span, when the store counts them. */
  storeOps?: number;
}

/** The bounds a backend declares for a config (`summarize(config, cluster)`), stored in the report. */
export interface DeclaredBounds {
  /** Virtual ms within which joins and clean leaves reach every node. */
  convergenceMs: number;
  /** Virtual ms within which a crashed node is detected and its routes withdrawn. */
  crashDetectionMs: number;
}

/**
 * Which declared bound a check's measured virtual time is held to: one of the two, or their sum
 * (a fault or replacement is detected within the crash bound, then the cluster converges).
 */
export type BoundName = keyof DeclaredBounds | "crashDetectionMs+convergenceMs";

/**
 * What a backend claims (`capabilities`) next to what this run's config exercised
 * (`summarize(config, cluster)`: the families of its pod ranges, its encapsulations). The table across
 * configs shows each claimed family and encapsulation as exercised by some config or "not
 * exercised".
 */
export interface ClaimsCoverage {
  families: { claimed: Family[]; exercised: Family[] };
  encapsulations: { claimed: Encapsulation[]; exercised: Encapsulation[] };
}

/** One entry of a check with several cases (e.g. one per invalid config). */
export interface SubResult {
  label: string;
  status: CheckStatus;
  reason?: string;
}

export interface CheckResult {
  id: string;
  section: Section;
  /** The rule, in one line. */
  rule: string;
  /** Where the rule comes from (Kubernetes networking model, CNI SPEC.md section, ...). */
  source: string;
  required: boolean;
  status: CheckStatus;
  /** Why it failed / was not run / threw, naming the pod, address and node involved. */
  reason?: string;
  metrics?: CheckMetrics;
  /** The declared bound the check's virtual time is held to, when it has one (from `summarize`). */
  bound?: { name: BoundName; ms: number };
  subResults?: SubResult[];
}

export interface ConformanceReport {
  backend: string;
  /** Label of the config the run used (file name or a caller's label). */
  config: string;
  nodes: number;
  seed: number;
  /** The cluster store's label when it was not the in-memory one (e.g. `etcd://127.0.0.1:2379`). */
  store?: string;
  /** ISO timestamp of the start. */
  started: string;
  durationMs: number;
  /** The bounds the backend declared for this config (`summarize`): shown next to the measured figures. */
  bounds?: DeclaredBounds;
  /** Claimed capabilities next to what this config exercised. */
  claims?: ClaimsCoverage;
  /** True when the run was strict: a required check "not run" / "not applicable" counts as not passed. */
  strict?: boolean;
  results: CheckResult[];
}

/** A config the backend must refuse, and the field path its ConfigError must name. */
export interface InvalidConfigCase {
  label: string;
  config: unknown;
  field: string;
}

/** A config in the anchor's own format that must be accepted (e.g. just inside a documented range). */
export interface AnchorConfigCase {
  label: string;
  config: unknown;
}

/**
 * The name of the export a backend's module (the one `--backend` loads) gives its section-C tables
 * under, so the CLI finds them without `--invalid-configs`:
 *
 * ```ts
 * export const conformance: BackendConformanceTables = { invalidConfigs: [...], anchorConfigs: [...] };
 * ```
 */
export const CONFORMANCE_EXPORT = "conformance";

/** What a backend module exports as `conformance` (see `CONFORMANCE_EXPORT`). */
export interface BackendConformanceTables {
  /** Configs the backend must refuse with code 7 naming `field`: both sides of every documented boundary. */
  invalidConfigs?: InvalidConfigCase[];
  /** Configs in the anchor's format that must be accepted (just inside every documented boundary). */
  anchorConfigs?: AnchorConfigCase[];
}

export interface ConformanceOptions<C = unknown> {
  backend: Backend<C>;
  /** The backend's own config format, unparsed (the suite calls `backend.parseConfig`). */
  config: unknown;
  /** Label shown in the report (default: "config"). */
  configLabel?: string;
  /** Nodes in the shared cluster (default 4; dynamics checks use 3 to 6). */
  nodes?: number;
  /** Seed of every random choice (cluster randomness, faults, property schedules). Default 1. */
  seed?: number;
  /** The backend's table of invalid configs (section C). */
  invalidConfigs?: InvalidConfigCase[];
  /** More configs in the anchor's own format that must be accepted (section C). */
  anchorConfigs?: AnchorConfigCase[];
  /**
   * A required check that ends "not run" or "not applicable" counts as not passed
   * (`hasRequiredFailure`, the CLI's exit status 1, a failing test in `defineConformanceSuite`).
   * Default false: such checks are counted in the summary line but do not fail the run.
   */
  strict?: boolean;
  /**
   * The underlay every simulated cluster uses (subnets with CIDR, gateway and MTU; routers;
   * external hosts). Default: two node subnets joined by a router, or one subnet when the
   * backend's `topologyNeeds(config)` says `singleSubnet` (see `topologyFor` in harness.ts).
   * Validated when the run starts (ConfigError naming `topology.<field>`). `summarize(config,
   * cluster)` is asked with this topology's node subnets.
   */
  topology?: SimTopology;
  /** Run only these check ids (default: all). Unknown ids throw a ConfigError. */
  checks?: string[];
  /** Property-based runs per property check (default 50). */
  propertyRuns?: number;
  /**
   * Labels and annotations of the n-th node (0-based) of every cluster the suite builds, whatever
   * the check names it: how a config gives roles to nodes, e.g. Calico's route reflectors
   * (`route-reflector=true` plus the `projectcalico.org/RouteReflectorClusterID` annotation).
   */
  nodeMetadata?: NodeMetadata;
  /** Called after each check (progress output). */
  onResult?: (result: CheckResult) => void;
  /**
   * Makes the cluster store of every simulated cluster (default: an in-memory store on the
   * cluster's virtual clock). With an external store (etcd) the clock is paced by the store's I/O
   * and checks that need virtual lease expiry or the in-memory outage switch are "not run"
   * (see external-store.ts).
   */
  store?: StoreProvider;
}

/** What a check sees. */
export interface CheckContext<C = unknown> {
  backend: Backend<C>;
  config: C;
  rawConfig: unknown;
  summary: NetworkSummary;
  nodes: number;
  seed: number;
  propertyRuns: number;
  invalidConfigs: InvalidConfigCase[] | undefined;
  anchorConfigs: { label: string; config: unknown }[] | undefined;
  /** The external cluster store, or undefined for the in-memory one. */
  store: StoreProvider | undefined;
  /** See `ConformanceOptions.nodeMetadata`. */
  nodeMetadata: NodeMetadata | undefined;
  /** See `ConformanceOptions.topology` (undefined: the default for the backend's summary). */
  topology?: SimTopology | undefined;
}

/** What a check's run returns (the runner adds id, section, rule, source, required). */
export interface CheckOutcome {
  status: CheckStatus;
  reason?: string;
  metrics?: CheckMetrics;
  /** The declared bound `metrics.virtualMs` is held to (the runner adds its value from `summarize`). */
  bound?: BoundName;
  subResults?: SubResult[];
}
