/**
 * Types of the conformance suite: check definitions, results and the JSON report.
 */
import type { Backend, NetworkSummary } from "@cnikit/core";
import type { StoreProvider } from "./external-store.ts";
import type { NodeMetadata } from "@cnikit/sim";

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

/** Figures a check records (dynamics checks: the convergence time of the scenario). */
export interface CheckMetrics {
  /** Virtual time (ms): the convergence time for dynamics checks, else the virtual time the check used. */
  virtualMs: number;
  /** Wall time (ms) of the same span. */
  wallMs: number;
  /** Peer messages sent during the span (MemoryNetwork stats). */
  messages: number;
  /** Peer payload bytes sent during the span. */
  bytes: number;
  /** Datastore operations during the span, when the store counts them. */
  storeOps?: number;
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
  results: CheckResult[];
}

/** A config the backend must refuse, and the field path its ConfigError must name. */
export interface InvalidConfigCase {
  label: string;
  config: unknown;
  field: string;
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
  anchorConfigs?: { label: string; config: unknown }[];
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
}

/** What a check's run returns (the runner adds id, section, rule, source, required). */
export interface CheckOutcome {
  status: CheckStatus;
  reason?: string;
  metrics?: CheckMetrics;
  subResults?: SubResult[];
}
