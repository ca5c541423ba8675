/**
 * The shape of one deliberately broken variant (conformance.md section H): a backend with one bug,
 * the config it runs with (its base backend's own format), the checks that must turn red on it
 * (`targets`) and a few unrelated checks that must stay green (`controls`: broken in one place, not
 * everywhere). The self-test also runs the unbroken base backend with the same config and requires
 * it to pass every target, so a target that is red for everyone proves nothing.
 */
import type { Backend } from "@cnikit/core";
import type { InvalidConfigCase } from "@cnikit/conformance/runner";

export interface BrokenVariant {
  label: string;
  /** The broken backend. */
  backend: Backend<unknown>;
  /** The unbroken backend it bends (reference, flannel, calico). */
  base: Backend<unknown>;
  /** Shape of the base, for the coverage table: "bridge+lease", "routed+bgp", "vxlan+fdb", "cloud preallocation". */
  shape: "bridge+lease" | "routed+bgp" | "vxlan+fdb" | "cloud preallocation";
  /** The base backend's own config format, unparsed. */
  config: unknown;
  /** Label of the base run this variant is compared against (variants with the same base and config share one). */
  baseLabel: string;
  invalidConfigs?: InvalidConfigCase[];
  targets: string[];
  controls: string[];
}
