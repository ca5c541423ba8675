// @ts-check
/**
 * The static-routes config, in JSON: `{ "network": "10.244.0.0/16", "nodeSubnetLength": 24 }`.
 * Both fields are optional. Every refusal is a ConfigError (CNI code 7) naming the field and the rule.
 */
import { ConfigError, Prefix } from "@cnikit/core";

/**
 * @typedef {object} StaticRoutesConfig
 * @property {string} network The pod range (IPv4 CIDR); every node takes one subnet of it.
 * @property {number} nodeSubnetLength Prefix length of a node's subnet: longer than the network's, at most 30.
 */

export const NAME = "static-routes";
const FIELDS = ["network", "nodeSubnetLength"];

/** @type {(field: string, rule: string, value: unknown) => never} */
function refuse(field, rule, value) {
  throw new ConfigError({ component: NAME, field, rule, value });
}

/** @param {unknown} input @returns {StaticRoutesConfig} */
export function parseConfig(input) {
  if (typeof input !== "object" || input === null || Array.isArray(input)) refuse("config", "must be a JSON object", input);
  const raw = /** @type {Record<string, unknown>} */ (input);
  for (const key of Object.keys(raw)) {
    if (!FIELDS.includes(key)) refuse(key, `is not a field (known: ${FIELDS.join(", ")})`, raw[key]);
  }
  const network = Prefix.parse(raw.network ?? "10.244.0.0/16", { component: NAME, field: "network" });
  if (network.family !== 4) refuse("network", "must be an IPv4 CIDR", raw.network);
  const length = raw.nodeSubnetLength ?? 24;
  if (typeof length !== "number" || !Number.isInteger(length) || length <= network.length || length > 30) {
    refuse("nodeSubnetLength", `must be an integer from ${network.length + 1} to 30`, length);
  }
  return { network: network.toString(), nodeSubnetLength: length };
}
