/**
 * Calico's own configuration, unchanged: `projectcalico.org/v3` IPPool, BGPConfiguration, BGPPeer,
 * IPAMConfig (and Node, for per-node BGP settings such as `routeReflectorClusterID`), as YAML or
 * JSON text with several documents, a list of objects, one object, or a `List` with `items`.
 * Calico's defaults and validation rules apply (README.md "Config" states them, cited upstream); every
 * error is a `ConfigError` whose field is `<Kind>/<name>.<path>` (e.g. `IPPool/a.spec.blockSize`).
 */
import { parseAllDocuments } from "yaml";
import { ConfigError, Prefix, isAddress, specialRanges } from "@cnikit/core";
import { parseSelector } from "./selector.ts";

const C = "calico";

export const EncapMode = { Always: "Always", CrossSubnet: "CrossSubnet", Never: "Never" } as const;
export type EncapMode = (typeof EncapMode)[keyof typeof EncapMode];

/** One IPPool with Calico's defaults applied. */
export interface IpPool {
  name: string;
  /** Canonical CIDR. */
  cidr: string;
  family: 4 | 6;
  blockSize: number;
  ipipMode: EncapMode;
  vxlanMode: EncapMode;
  natOutgoing: boolean;
  disabled: boolean;
  disableBGPExport: boolean;
  /** Selector text (default `all()`). */
  nodeSelector: string;
}

/** BGPConfiguration `default` (cluster-wide). */
export interface BgpConfiguration {
  nodeToNodeMeshEnabled: boolean;
  asNumber: number;
  listenPort: number;
}

/** One BGPPeer. Exactly one of `peerIP` / `peerSelector`; `node` or `nodeSelector` says who peers. */
export interface BgpPeer {
  name: string;
  node?: string;
  nodeSelector?: string;
  peerIP?: string;
  peerSelector?: string;
  asNumber?: number;
}

/** Per-node BGP settings from a `Node` document. */
export interface NodeBgp {
  name: string;
  labels: Record<string, string>;
  asNumber?: number;
  routeReflectorClusterID?: string;
}

/** IPAMConfig `default`. */
export interface IpamConfig {
  strictAffinity: boolean;
  /** Blocks a host may hold (0 in the input means Calico's 20). */
  maxBlocksPerHost: number;
  autoAllocateBlocks: boolean;
}

export interface CalicoConfig {
  pools: IpPool[];
  bgp: BgpConfiguration;
  peers: BgpPeer[];
  nodes: NodeBgp[];
  ipam: IpamConfig;
}

export const CALICO_DEFAULTS = {
  blockSize4: 26,
  blockSize6: 122,
  asNumber: 64512,
  listenPort: 179,
  maxBlocksPerHost: 20,
} as const;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

/** One resource of the input, with the number of the YAML document it came from (multi-document text only). */
interface Resource {
  value: unknown;
  document?: number;
}

function documents(input: unknown): Resource[] {
  if (typeof input === "string") {
    const docs = parseAllDocuments(input);
    const list = Array.isArray(docs) ? docs : [docs];
    const out: Resource[] = [];
    list.forEach((d, i) => {
      if (d.errors.length > 0) throw new ConfigError({ component: C, field: `(document ${i + 1})`, rule: `is not valid YAML/JSON: ${d.errors[0]!.message}` });
      const v: unknown = d.toJS();
      // Empty documents (a leading `---`, `---` twice) are skipped, as calicoctl does.
      if (v === null || v === undefined) return;
      for (const r of documents(v)) out.push(list.length > 1 ? { value: r.value, document: i + 1 } : r);
    });
    return out;
  }
  if (Array.isArray(input)) return input.flatMap((v) => documents(v));
  if (isObj(input) && Array.isArray(input.items) && (input.kind === undefined || String(input.kind).endsWith("List"))) return documents(input.items);
  if (isObj(input)) return [{ value: input }];
  throw new ConfigError({ component: C, field: "(config)", rule: "must be Calico resources: YAML/JSON text, an object, or a list of objects", value: input });
}

/** `err` with the YAML document it is about named in its rule (a `ConfigError` not already naming one). */
function inDocument(err: unknown, document: number | undefined): unknown {
  if (document === undefined || !(err instanceof ConfigError) || err.field.startsWith("(document ")) return err;
  return new ConfigError({ component: C, field: err.field, rule: `${err.rule}, in document ${document}`, value: err.value, cause: err });
}

function bool(v: unknown, field: string, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== "boolean") throw new ConfigError({ component: C, field, rule: "must be true or false", value: v });
  return v;
}

function int(v: unknown, field: string, min: number, max: number, dflt?: number): number {
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) throw new ConfigError({ component: C, field, rule: `must be an integer from ${min} to ${max}`, value: v });
  return v;
}

function mode(v: unknown, field: string): EncapMode {
  if (v === undefined || v === "") return "Never";
  if (v === "Always" || v === "CrossSubnet" || v === "Never") return v;
  throw new ConfigError({ component: C, field, rule: "must be Always, CrossSubnet or Never", value: v });
}

function asn(v: unknown, field: string): number {
  if (typeof v === "string" && /^\d+(\.\d+)?$/.test(v)) {
    const [hi, lo] = v.split(".");
    v = lo === undefined ? Number(hi) : Number(hi) * 65536 + Number(lo);
  }
  return int(v, field, 1, 0xffffffff);
}

const LINK_LOCAL = specialRanges("linkLocal");

/** Parses one IPPool document (defaults + Calico's per-pool rules). */
export function parsePool(doc: Obj, name: string): IpPool {
  const at = `IPPool/${name}.spec`;
  const spec = isObj(doc.spec) ? doc.spec : {};
  if (typeof spec.cidr === "string" && spec.cidr.length > 48) throw new ConfigError({ component: C, field: `${at}.cidr`, rule: "must be at most 48 characters", value: spec.cidr });
  const cidr = Prefix.parse(spec.cidr, { component: C, field: `${at}.cidr` });
  if (LINK_LOCAL.some((l) => l.overlaps(cidr)))
    throw new ConfigError({ component: C, field: `${at}.cidr`, rule: "must not overlap the link-local range 169.254.0.0/16 or fe80::/10", value: spec.cidr });
  const family = cidr.family;
  const blockSize = family === 4 ? int(spec.blockSize, `${at}.blockSize`, 20, 32, CALICO_DEFAULTS.blockSize4) : int(spec.blockSize, `${at}.blockSize`, 116, 128, CALICO_DEFAULTS.blockSize6);
  const ipipMode = mode(spec.ipipMode, `${at}.ipipMode`);
  const vxlanMode = mode(spec.vxlanMode, `${at}.vxlanMode`);
  if (ipipMode !== "Never" && vxlanMode !== "Never") {
    throw new ConfigError({ component: C, field: `${at}.vxlanMode`, rule: `IPIP (ipipMode ${ipipMode}) and VXLAN cannot both be enabled on one pool`, value: vxlanMode });
  }
  if (family === 6 && ipipMode !== "Never") throw new ConfigError({ component: C, field: `${at}.ipipMode`, rule: "IPIP is not supported on an IPv6 pool; use vxlanMode", value: ipipMode });
  const disabled = bool(spec.disabled, `${at}.disabled`, false);
  if (!disabled && cidr.length > blockSize) {
    throw new ConfigError({ component: C, field: `${at}.cidr`, rule: `IP pool size is too small for use with Calico IPAM: /${cidr.length} is smaller than one /${blockSize} block`, value: spec.cidr });
  }
  const nodeSelector = spec.nodeSelector === undefined || spec.nodeSelector === "" ? "all()" : spec.nodeSelector;
  parseSelector(nodeSelector, `${at}.nodeSelector`);
  return {
    name,
    cidr: cidr.toString(),
    family,
    blockSize,
    ipipMode,
    vxlanMode,
    natOutgoing: bool(spec.natOutgoing, `${at}.natOutgoing`, false),
    disabled,
    disableBGPExport: bool(spec.disableBGPExport, `${at}.disableBGPExport`, false),
    nodeSelector: nodeSelector as string,
  };
}

/**
 * Refuses a pool that overlaps another one (by CIDR). Used by the parser and, transactionally,
 * by `PoolStore` on create and on update.
 * @throws ConfigError naming `IPPool/<name>.spec.cidr`.
 */
export function checkNoOverlap(pool: IpPool, others: readonly IpPool[]): void {
  const mine = Prefix.parse(pool.cidr);
  for (const o of others) {
    if (o.name === pool.name) continue;
    if (Prefix.parse(o.cidr).overlaps(mine)) {
      throw new ConfigError({ component: C, field: `IPPool/${pool.name}.spec.cidr`, rule: `overlaps IPPool ${o.name} (${o.cidr}); pools must not overlap`, value: pool.cidr });
    }
  }
}

function metaName(doc: Obj, kind: string, index: number): string {
  const meta = isObj(doc.metadata) ? doc.metadata : {};
  const name = meta.name;
  if (typeof name !== "string" || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name) || name.length > 253) {
    throw new ConfigError({ component: C, field: `${kind}[${index}].metadata.name`, rule: "must be a DNS subdomain name (lowercase letters, digits, '-' and '.')", value: name });
  }
  return name;
}

/**
 * Parses Calico resources into a `CalicoConfig` with Calico's defaults. Pure. A config with no
 * IPPool gets none (the agent then refuses to start, as Calico without pools cannot assign).
 * @throws ConfigError naming the field and the rule, for the first problem found.
 */
export function parseCalicoConfig(input: unknown): CalicoConfig {
  const docs = documents(input);
  const pools: IpPool[] = [];
  const peers: BgpPeer[] = [];
  const nodes: NodeBgp[] = [];
  let bgp: BgpConfiguration = { nodeToNodeMeshEnabled: true, asNumber: CALICO_DEFAULTS.asNumber, listenPort: CALICO_DEFAULTS.listenPort };
  let ipam: IpamConfig = { strictAffinity: false, maxBlocksPerHost: CALICO_DEFAULTS.maxBlocksPerHost, autoAllocateBlocks: true };
  docs.forEach((resource, i) => {
    try {
      parseResource(resource.value, i, resource.document ?? i + 1);
    } catch (err) {
      throw inDocument(err, resource.document);
    }
  });
  return { pools, bgp, peers, nodes, ipam };

  function parseResource(raw: unknown, i: number, document: number): void {
    if (!isObj(raw)) throw new ConfigError({ component: C, field: `(document ${document})`, rule: "must be an object with apiVersion and kind", value: raw });
    const kind = raw.kind;
    if (raw.apiVersion !== undefined && raw.apiVersion !== "projectcalico.org/v3" && !(kind === "Node" && raw.apiVersion === "v1")) {
      throw new ConfigError({ component: C, field: `${String(kind)}[${i}].apiVersion`, rule: "must be projectcalico.org/v3", value: raw.apiVersion });
    }
    const spec = isObj(raw.spec) ? raw.spec : {};
    switch (kind) {
      case "IPPool": {
        const pool = parsePool(raw, metaName(raw, "IPPool", i));
        if (pools.some((p) => p.name === pool.name)) throw new ConfigError({ component: C, field: `IPPool/${pool.name}.metadata.name`, rule: "appears twice" });
        checkNoOverlap(pool, pools);
        pools.push(pool);
        return;
      }
      case "BGPConfiguration": {
        const name = metaName(raw, "BGPConfiguration", i);
        if (name !== "default") return; // per-node overrides (node.<name>) are not modelled; ignored
        const at = `BGPConfiguration/${name}.spec`;
        bgp = {
          nodeToNodeMeshEnabled: bool(spec.nodeToNodeMeshEnabled, `${at}.nodeToNodeMeshEnabled`, true),
          asNumber: spec.asNumber === undefined ? CALICO_DEFAULTS.asNumber : asn(spec.asNumber, `${at}.asNumber`),
          listenPort: int(spec.listenPort, `${at}.listenPort`, 1, 65535, CALICO_DEFAULTS.listenPort),
        };
        return;
      }
      case "BGPPeer": {
        const name = metaName(raw, "BGPPeer", i);
        const at = `BGPPeer/${name}.spec`;
        const peer: BgpPeer = { name };
        if (spec.node !== undefined && spec.nodeSelector !== undefined) throw new ConfigError({ component: C, field: `${at}.nodeSelector`, rule: "cannot be set together with node" });
        if (spec.peerIP !== undefined && spec.peerSelector !== undefined) throw new ConfigError({ component: C, field: `${at}.peerSelector`, rule: "cannot be set together with peerIP" });
        if (spec.peerIP === undefined && spec.peerSelector === undefined) throw new ConfigError({ component: C, field: `${at}.peerIP`, rule: "one of peerIP or peerSelector is required" });
        if (spec.node !== undefined) {
          if (typeof spec.node !== "string" || spec.node === "") throw new ConfigError({ component: C, field: `${at}.node`, rule: "must be a node name", value: spec.node });
          peer.node = spec.node;
        }
        if (spec.nodeSelector !== undefined) {
          parseSelector(spec.nodeSelector, `${at}.nodeSelector`);
          peer.nodeSelector = spec.nodeSelector as string;
        }
        if (spec.peerSelector !== undefined) {
          parseSelector(spec.peerSelector, `${at}.peerSelector`);
          peer.peerSelector = spec.peerSelector as string;
          if (spec.asNumber !== undefined) throw new ConfigError({ component: C, field: `${at}.asNumber`, rule: "must not be set with peerSelector (the AS comes from the peer node)" });
        }
        if (spec.peerIP !== undefined) {
          const ip = typeof spec.peerIP === "string" ? spec.peerIP.replace(/^\[?([^\]]+?)\]?(:\d+)?$/, "$1") : spec.peerIP;
          Prefix.parse(`${String(ip)}/${String(ip).includes(":") ? 128 : 32}`, { component: C, field: `${at}.peerIP` });
          peer.peerIP = String(ip);
          peer.asNumber = asn(spec.asNumber, `${at}.asNumber`);
        }
        peers.push(peer);
        return;
      }
      case "IPAMConfig":
      case "IPAMConfiguration": {
        const name = metaName(raw, String(kind), i);
        const at = `${String(kind)}/${name}.spec`;
        const strictAffinity = bool(spec.strictAffinity, `${at}.strictAffinity`, false);
        const autoAllocateBlocks = bool(spec.autoAllocateBlocks, `${at}.autoAllocateBlocks`, true);
        if (!strictAffinity && !autoAllocateBlocks) throw new ConfigError({ component: C, field: `${at}.autoAllocateBlocks`, rule: "cannot be false while strictAffinity is false" });
        const maxRaw = int(spec.maxBlocksPerHost, `${at}.maxBlocksPerHost`, 0, 1_000_000, 0);
        if (maxRaw > 0 && !strictAffinity) throw new ConfigError({ component: C, field: `${at}.maxBlocksPerHost`, rule: "can only be set with strictAffinity: true", value: maxRaw });
        ipam = { strictAffinity, autoAllocateBlocks, maxBlocksPerHost: maxRaw === 0 ? CALICO_DEFAULTS.maxBlocksPerHost : maxRaw };
        return;
      }
      case "Node": {
        const name = metaName(raw, "Node", i);
        const meta = raw.metadata as Obj;
        const labels = isObj(meta.labels) ? (Object.fromEntries(Object.entries(meta.labels).map(([k, v]) => [k, String(v)])) as Record<string, string>) : {};
        const b = isObj(spec.bgp) ? spec.bgp : {};
        const node: NodeBgp = { name, labels };
        if (b.asNumber !== undefined) node.asNumber = asn(b.asNumber, `Node/${name}.spec.bgp.asNumber`);
        if (b.routeReflectorClusterID !== undefined) {
          const id = b.routeReflectorClusterID;
          if (typeof id !== "string" || !isAddress(id, 4)) {
            throw new ConfigError({ component: C, field: `Node/${name}.spec.bgp.routeReflectorClusterID`, rule: "must be a dotted-quad IPv4 address", value: id });
          }
          node.routeReflectorClusterID = id;
        }
        nodes.push(node);
        return;
      }
      default:
        throw new ConfigError({ component: C, field: `(document ${document}).kind`, rule: "must be IPPool, BGPConfiguration, BGPPeer, IPAMConfig or Node", value: kind });
    }
  }
}
