/**
 * The configuration file of the `bgp-utils-free` command (YAML or JSON), turned into speaker options.
 * Field names follow `SpeakerOptions` / `PeerConfig`; two additions: `listen` (address and port to
 * accept connections on, or false) and `routes` (prefixes to originate, as strings or objects with
 * the `AnnounceOptions` fields). Unknown keys are refused, so typos do not pass silently.
 */
import type { AnnounceOptions, PeerConfig, SpeakerOptions } from "./config.ts";
import { checkAddress, checkInt, validatePeerConfig, validateSpeakerOptions } from "./config.ts";
import { BgpConfigError } from "./errors.ts";

/** A parsed configuration file. */
export interface CliConfig {
  speaker: Omit<SpeakerOptions, "transport" | "clock">;
  /** Where to listen, or false to only dial. Default: `localAddress` (or 0.0.0.0) port 179; `backlog`: the listen queue (default 511; a reflector that many clients dial at once wants more). */
  listen: { address: string; port: number; backlog?: number } | false;
  routes: { prefix: string; options: AnnounceOptions }[];
}

const SPEAKER_KEYS = new Set([
  "asn",
  "routerId",
  "localAddress",
  "localAddress6",
  "port",
  "families",
  "holdTime",
  "keepaliveTime",
  "connectRetryTime",
  "connectDelayTime",
  "idleHoldTime",
  "openHoldTime",
  "gracefulRestart",
  "staleRoutesTime",
  "addPath",
  "enhancedRouteRefresh",
  "extendedMessage",
  "clusterId",
  "defaultLocalPref",
  "jitter",
  "peers",
  "listen",
  "routes",
]);
const PEER_KEYS = new Set([
  "address",
  "asn",
  "port",
  "passive",
  "localAddress",
  "holdTime",
  "keepaliveTime",
  "connectRetryTime",
  "connectDelayTime",
  "idleHoldTime",
  "routeReflectorClient",
  "nextHopSelf",
  "addPath",
  "requiredCapabilities",
  "description",
]);
const ROUTE_KEYS = new Set(["prefix", "nextHop", "origin", "med", "localPref", "communities", "largeCommunities", "asPath", "atomicAggregate"]);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function noUnknownKeys(obj: Record<string, unknown>, allowed: Set<string>, field: string): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.has(k)) throw new BgpConfigError(field ? `${field}.${k}` : k, `is not a known setting (known: ${[...allowed].join(", ")})`);
  }
}

/**
 * Validates a configuration document (already parsed from YAML or JSON). Throws BgpConfigError
 * naming the first bad field; never returns a half-valid config.
 */
export function parseCliConfig(doc: unknown): CliConfig {
  if (!isObject(doc)) throw new BgpConfigError("(document)", "must be a mapping with asn, routerId and peers");
  noUnknownKeys(doc, SPEAKER_KEYS, "");
  const { listen, routes, peers, ...rest } = doc;
  const speaker = { ...rest } as unknown as CliConfig["speaker"];
  if (peers !== undefined) {
    if (!Array.isArray(peers)) throw new BgpConfigError("peers", "must be a list", peers);
    speaker.peers = peers.map((p: unknown, i: number): PeerConfig => {
      if (!isObject(p)) throw new BgpConfigError(`peers[${i}]`, "must be a mapping with address and asn", p);
      noUnknownKeys(p, PEER_KEYS, `peers[${i}]`);
      return validatePeerConfig(p as unknown as PeerConfig, `peers[${i}]`);
    });
  }
  validateSpeakerOptions(speaker as SpeakerOptions);
  let listenOut: CliConfig["listen"];
  if (listen === false) listenOut = false;
  else if (listen === undefined) listenOut = { address: speaker.localAddress ?? "0.0.0.0", port: 179 };
  else {
    if (!isObject(listen)) throw new BgpConfigError("listen", "must be false or { address, port, backlog }", listen);
    noUnknownKeys(listen, new Set(["address", "port", "backlog"]), "listen");
    listenOut = {
      address: listen["address"] === undefined ? (speaker.localAddress ?? "0.0.0.0") : checkAddress(listen["address"], "listen.address"),
      port: listen["port"] === undefined ? 179 : checkInt(listen["port"], "listen.port", 0, 65535),
    };
    if (listen["backlog"] !== undefined) listenOut.backlog = checkInt(listen["backlog"], "listen.backlog", 1, 65535);
  }
  const routesOut: CliConfig["routes"] = [];
  if (routes !== undefined) {
    if (!Array.isArray(routes)) throw new BgpConfigError("routes", "must be a list of prefixes or { prefix, nextHop, ... }", routes);
    routes.forEach((r: unknown, i: number) => {
      if (typeof r === "string") {
        routesOut.push({ prefix: r, options: {} });
        return;
      }
      if (!isObject(r) || typeof r["prefix"] !== "string") throw new BgpConfigError(`routes[${i}]`, "must be a prefix or a mapping with prefix", r);
      noUnknownKeys(r, ROUTE_KEYS, `routes[${i}]`);
      const { prefix, ...options } = r;
      routesOut.push({ prefix: prefix as string, options: options as AnnounceOptions });
    });
  }
  return { speaker, listen: listenOut, routes: routesOut };
}
