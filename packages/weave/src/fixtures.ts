/**
 * Weave's fixtures (`@cnikit/weave/fixtures`), in the shape every backend's fixtures share
 * (`BackendFixtures` of @cnikit/core), in the weave-kube DaemonSet's own format: the container's
 * environment as a `{NAME: value}` object (the parser takes the `env:` list too).
 *
 * Modes: `fastdp` (Weave's default: the kernel vxlan port), `sleeve` (WEAVE_NO_FASTDP: the
 * userspace UDP sleeve), `encrypted` (WEAVE_PASSWORD: sealed sleeve between every pair of peers).
 */
import { conformanceTables } from "@cnikit/core";
import type { BackendFixtures } from "@cnikit/core";

export type WeaveEnv = Record<string, string | number | boolean>;

const PASSWORD = "correct horse battery staple";

export const weaveFixtures: BackendFixtures<WeaveEnv> = {
  configs: [
    { label: "fastdp", config: {} },
    { label: "sleeve", config: { WEAVE_NO_FASTDP: "1" } },
    { label: "encrypted", config: { WEAVE_PASSWORD: PASSWORD } },
  ],
  invalidConfigs: [
    { label: "unknown variable", config: { IPALLOC_RANG: "10.32.0.0/12" }, field: "IPALLOC_RANG", rule: "unknown variable" },
    { label: "EXTRA_ARGS is not passed through", config: { EXTRA_ARGS: "--log-level=debug" }, field: "EXTRA_ARGS", rule: "command-line flags are not passed through" },
    { label: "range not a CIDR", config: { IPALLOC_RANGE: "10.32.0.0" }, field: "IPALLOC_RANGE", rule: "must be in CIDR notation" },
    { label: "range IPv6", config: { IPALLOC_RANGE: "fd00::/64" }, field: "IPALLOC_RANGE", rule: "must be an IPv4 CIDR" },
    { label: "range /31: smaller than 4 addresses", config: { IPALLOC_RANGE: "10.32.0.0/31" }, field: "IPALLOC_RANGE", rule: "smaller than minimum size 4" },
    {
      label: "default subnet outside the range",
      config: { IPALLOC_RANGE: "10.32.0.0/12", IPALLOC_DEFAULT_SUBNET: "10.48.0.0/16" },
      field: "IPALLOC_DEFAULT_SUBNET",
      rule: "must lie inside allocation range",
    },
    { label: "init mode unknown", config: { IPALLOC_INIT: "quorum=3" }, field: "IPALLOC_INIT", rule: "unknown mode" },
    { label: "seed without names", config: { IPALLOC_INIT: "seed=" }, field: "IPALLOC_INIT", rule: "seed mode requires peer name list" },
    { label: "observer with a parameter", config: { IPALLOC_INIT: "observer=2" }, field: "IPALLOC_INIT", rule: "observer mode takes no parameter" },
    { label: "MTU below 576", config: { WEAVE_MTU: "575" }, field: "WEAVE_MTU", rule: "MTU must be an integer from 576 to 65535" },
    { label: "MTU above 65535", config: { WEAVE_MTU: "65536" }, field: "WEAVE_MTU", rule: "MTU must be an integer from 576 to 65535" },
    { label: "MTU the suite's 1500 underlay cannot carry over vxlan", config: { WEAVE_MTU: "1451" }, field: "WEAVE_MTU", rule: "must be at most 1450", refusedAt: "start" },
    { label: "CONN_LIMIT negative", config: { CONN_LIMIT: "-1" }, field: "CONN_LIMIT", rule: "connection limit must be an integer" },
    { label: "NO_MASQ_LOCAL not a switch", config: { NO_MASQ_LOCAL: "yes" }, field: "NO_MASQ_LOCAL", rule: 'must be "0", "1", "true" or "false"' },
  ],
  anchorConfigs: [
    { label: "range /30: exactly 4 addresses", config: { IPALLOC_RANGE: "10.32.0.0/30" } },
    { label: "MTU 576", config: { WEAVE_MTU: "576" } },
    { label: "MTU 1450: the most a 1500 underlay carries over vxlan", config: { WEAVE_MTU: "1450" } },
    { label: "CONN_LIMIT 0 (unlimited)", config: { CONN_LIMIT: "0" } },
    { label: "default subnet = the range", config: { IPALLOC_RANGE: "10.32.0.0/12", IPALLOC_DEFAULT_SUBNET: "10.32.0.0/12" } },
    { label: "consensus=1", config: { IPALLOC_INIT: "consensus=1" } },
  ],
};

/** Weave's section-C tables under the export name the conformance CLI looks for (`conformance`). */
export const conformance = conformanceTables(weaveFixtures);
