/**
 * The reference backend's own config format (JSON):
 *
 * ```json
 * { "network": "10.250.0.0/16", "nodeSubnetLength": 24, "natOutgoing": true, "mtu": 1500 }
 * ```
 *
 * Every field is optional (defaults above). Validation is strict: unknown keys are refused by
 * name, so a typo never silently falls back to a default.
 */
import { ConfigError, Prefix } from "@cnikit/core";

/** The parsed, validated configuration. */
export interface ReferenceConfig {
  /** The pod range every node subnet is carved from (IPv4, host bits zero). */
  network: string;
  /** Prefix length of each node's subnet (network length < it ≤ 30). */
  nodeSubnetLength: number;
  /** Masquerade traffic from pods to addresses outside `network`. */
  natOutgoing: boolean;
  /** MTU of the bridge and the pod interfaces (no encapsulation, so it may equal the underlay's). */
  mtu: number;
}

export const REFERENCE_DEFAULTS: ReferenceConfig = Object.freeze({
  network: "10.250.0.0/16",
  nodeSubnetLength: 24,
  natOutgoing: true,
  mtu: 1500,
});

const COMPONENT = "reference";
const KNOWN_KEYS = ["network", "nodeSubnetLength", "natOutgoing", "mtu"] as const;

/** Smallest node subnet: /30 leaves the gateway (.1) and one pod (.2). */
export const MAX_NODE_SUBNET_LENGTH = 30;
/** IPv4 minimum MTU a host must accept (RFC 791) and the jumbo-frame ceiling we accept. */
export const MTU_MIN = 576;
export const MTU_MAX = 9216;

function fail(field: string, rule: string, value?: unknown): never {
  throw new ConfigError(value === undefined ? { component: COMPONENT, field, rule } : { component: COMPONENT, field, rule, value });
}

/**
 * Parses and validates a reference config, applying defaults. Pure.
 * Throws `ConfigError` (code 7) naming the field path and the rule broken: a non-object input
 * (field `config`), an unknown key (field = the key), a network that is not an IPv4 CIDR with zero
 * host bits, a nodeSubnetLength that is not an integer in (network length, 30], a natOutgoing that
 * is not a boolean, an mtu that is not an integer in [576, 9216].
 */
export function parseReferenceConfig(input: unknown): ReferenceConfig {
  if (input === null || typeof input !== "object" || Array.isArray(input)) {
    fail("config", 'must be a JSON object such as {"network": "10.250.0.0/16"}', input);
  }
  const raw = input as Record<string, unknown>;
  for (const key of Object.keys(raw)) {
    if (!(KNOWN_KEYS as readonly string[]).includes(key)) {
      fail(key, `unknown field; the reference config knows only ${KNOWN_KEYS.join(", ")}`, raw[key]);
    }
  }

  const networkText = raw.network === undefined ? REFERENCE_DEFAULTS.network : raw.network;
  const network = Prefix.parse(networkText, { field: "network", component: COMPONENT });
  if (network.family !== 4) fail("network", "must be an IPv4 prefix (the reference backend is IPv4 only)", networkText);

  const nodeSubnetLength = raw.nodeSubnetLength === undefined ? REFERENCE_DEFAULTS.nodeSubnetLength : raw.nodeSubnetLength;
  if (typeof nodeSubnetLength !== "number" || !Number.isInteger(nodeSubnetLength)) {
    fail("nodeSubnetLength", "must be an integer prefix length", nodeSubnetLength);
  }
  if (nodeSubnetLength <= network.length) {
    fail("nodeSubnetLength", `must be longer than the network's /${network.length} so that nodes get a part of it`, nodeSubnetLength);
  }
  if (nodeSubnetLength > MAX_NODE_SUBNET_LENGTH) {
    fail("nodeSubnetLength", `must be at most ${MAX_NODE_SUBNET_LENGTH} (a node needs a gateway and at least one pod address)`, nodeSubnetLength);
  }

  const natOutgoing = raw.natOutgoing === undefined ? REFERENCE_DEFAULTS.natOutgoing : raw.natOutgoing;
  if (typeof natOutgoing !== "boolean") fail("natOutgoing", "must be true or false", natOutgoing);

  const mtu = raw.mtu === undefined ? REFERENCE_DEFAULTS.mtu : raw.mtu;
  if (typeof mtu !== "number" || !Number.isInteger(mtu) || mtu < MTU_MIN || mtu > MTU_MAX) {
    fail("mtu", `must be an integer from ${MTU_MIN} to ${MTU_MAX}`, mtu);
  }

  return { network: network.toString(), nodeSubnetLength, natOutgoing, mtu };
}
