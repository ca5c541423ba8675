/**
 * The lab's address plan, pure: a topology (the simulator's `SimTopology`, so the lab and the sim
 * build the same underlay) and a node count in, every namespace, interface, address and path out.
 * Nothing here touches the system; `topology.ts` builds what the plan says.
 *
 * Layout (default topology, two node subnets):
 *
 * ```
 *   fabric ns:  br0 (198.51.100.0/24)   br1 (203.0.113.0/24)   br2 (192.0.2.0/24, "ext")
 *                 │  │  │                  │  │                  │
 *   router ns r1: s0=198.51.100.1 ─ s1=203.0.113.1 ─ s2=192.0.2.1   (ip_forward=1)
 *   node ns:   node-1 eth0=198.51.100.10   node-2 eth0=203.0.113.10   node-3 eth0=198.51.100.11 ...
 *   infra ns:  eth0=198.51.100.254 (etcd)          ext host ns "internet": eth0=192.0.2.200
 * ```
 *
 * Node placement copies the simulator's (`SimCluster.addNode`): nodes alternate over the subnets
 * that hold no external host, each taking the next free address from .10 up, named `node-<i>`.
 * Every L2 segment is a bridge in the lab's fabric namespace, never in the host's own namespace.
 */
import { ConfigError, Prefix, formatAddress, parseAddress } from "@cnikit/core";
import type { SimTopology } from "@cnikit/sim";

const C = "lab";

/** Where every lab keeps its state (`<root>/<name>/state.json`). */
export const DEFAULT_STATE_ROOT = "/run/cnikit-lab";
/** The TCP and UDP port every probe responder serves. */
export const PROBE_PORT = 8080;
/** etcd's client port on the infra host. */
export const ETCD_PORT = 2379;
/** cnikitd's peer (TCP PeerTransport) port on each node's underlay address. */
export const PEER_PORT = 7946;
/** Lab names: short, so namespace and socket paths stay short. */
export const LAB_NAME_RE = /^[a-z0-9][a-z0-9-]{0,19}$/;

/** One L2 segment of the underlay. */
export interface PlannedSubnet {
  name: string;
  cidr: string;
  prefixLength: number;
  /** The router address hosts on it route through (the topology's `gateway`). */
  gateway?: string;
  mtu: number;
  /** The bridge in the fabric namespace. */
  bridge: string;
}

/** A host on one subnet: a namespace with `eth0` plugged into the subnet's bridge. */
export interface PlannedHost {
  name: string;
  ns: string;
  subnet: string;
  address: string;
  prefixLength: number;
  gateway?: string;
  mtu: number;
  /** The veth end in the fabric namespace (on the subnet's bridge). */
  fabricIf: string;
}

/** A router: one interface per subnet it joins, IPv4 forwarding on. */
export interface PlannedRouter {
  name: string;
  ns: string;
  interfaces: { subnet: string; ifName: string; fabricIf: string; address: string; prefixLength: number; mtu: number }[];
  /** Routes to subnets it does not join (over other routers) and the topology's static routes. */
  routes: { dst: string; via: string }[];
}

/** A node: a host that runs cnikitd. */
export interface PlannedNode extends PlannedHost {
  /** 1-based, in creation order. */
  index: number;
  /** Per-node directory (config, local state, logs). */
  dir: string;
  socketPath: string;
  configPath: string;
  logPath: string;
  peerPort: number;
}

/** Everything `up` creates, by name. */
export interface LabPlan {
  name: string;
  /** Namespace prefix: `ckl-<name>`. */
  prefix: string;
  stateDir: string;
  fabricNs: string;
  subnets: PlannedSubnet[];
  routers: PlannedRouter[];
  externals: PlannedHost[];
  /** The host that runs etcd. */
  infra: PlannedHost;
  nodes: PlannedNode[];
  etcd: { address: string; port: number; clientUrl: string; dataDir: string; logPath: string };
}

/** Options of `planLab`. */
export interface PlanOptions {
  /** Lab name (`LAB_NAME_RE`). */
  name: string;
  /** Number of nodes, 1-200. */
  nodes: number;
  topology: SimTopology;
  /** Default `DEFAULT_STATE_ROOT`. */
  stateRoot?: string;
}

function fail(field: string, rule: string, value?: unknown): never {
  throw new ConfigError(value === undefined ? { component: C, field, rule } : { component: C, field, rule, value });
}

/** Validates a lab name; `ConfigError` (field `name`) when it does not match `LAB_NAME_RE`. */
export function checkLabName(name: unknown): string {
  if (typeof name !== "string" || !LAB_NAME_RE.test(name)) fail("name", "must be 1-20 characters of a-z, 0-9 and -, starting with a letter or digit", name);
  return name;
}

/** The state directory of lab `name` under `root`. */
export function labDir(name: string, root: string = DEFAULT_STATE_ROOT): string {
  return `${root.replace(/\/+$/, "")}/${name}`;
}

/** The namespace prefix of lab `name`. */
export function nsPrefix(name: string): string {
  return `ckl-${name}`;
}

/** A pod's namespace name. */
export function podNamespace(lab: string, pod: string): string {
  return `${nsPrefix(lab)}-${pod}`;
}

/**
 * Computes the plan. Pure. Throws `ConfigError` naming the field for a bad name, node count or
 * topology (an IPv6 or unparsable subnet, a router on an unknown subnet, no subnet for nodes, a
 * subnet too small for its nodes).
 */
export function planLab(options: PlanOptions): LabPlan {
  const name = checkLabName(options.name);
  if (!Number.isInteger(options.nodes) || options.nodes < 1 || options.nodes > 200) fail("nodes", "must be an integer 1-200", options.nodes);
  const root = options.stateRoot ?? DEFAULT_STATE_ROOT;
  const stateDir = labDir(name, root);
  const prefix = nsPrefix(name);
  const topo = options.topology;
  if (!Array.isArray(topo.subnets) || topo.subnets.length === 0) fail("topology.subnets", "must list at least one subnet", topo.subnets);
  if (topo.subnets.length > 16) fail("topology.subnets", "must list at most 16 subnets", topo.subnets.length);

  const subnets: PlannedSubnet[] = topo.subnets.map((s, i) => {
    let p: Prefix;
    try {
      p = Prefix.parse(s.cidr);
    } catch {
      return fail(`topology.subnets[${i}].cidr`, "must be an IPv4 CIDR", s.cidr);
    }
    if (p.family !== 4) fail(`topology.subnets[${i}].cidr`, "must be IPv4 (the lab's underlay is IPv4)", s.cidr);
    if (p.length > 29) fail(`topology.subnets[${i}].cidr`, "must be /29 or larger", s.cidr);
    const out: PlannedSubnet = { name: s.name, cidr: p.toString(), prefixLength: p.length, mtu: s.mtu ?? 1500, bridge: `br${i}` };
    if (s.gateway !== undefined) {
      if (!p.contains(s.gateway)) fail(`topology.subnets[${i}].gateway`, `must lie inside ${p.toString()}`, s.gateway);
      out.gateway = s.gateway;
    }
    return out;
  });
  const byName = new Map(subnets.map((s) => [s.name, s]));
  if (byName.size !== subnets.length) fail("topology.subnets", "subnet names must be unique");
  const used = new Map<string, Set<string>>(subnets.map((s) => [s.name, new Set<string>()]));
  const take = (subnet: string, address: string, field: string): void => {
    const sub = byName.get(subnet);
    if (!sub) fail(field, `must name a subnet of the topology (${[...byName.keys()].join(", ")})`, subnet);
    if (!Prefix.parse(sub.cidr).contains(address)) fail(field, `address ${address} must lie inside ${sub.cidr}`, address);
    const set = used.get(subnet)!;
    if (set.has(address)) fail(field, `address ${address} is used twice on ${subnet}`, address);
    set.add(address);
  };

  const routers: PlannedRouter[] = (topo.routers ?? []).map((r, ri) => ({
    name: r.name,
    ns: `${prefix}-router-${ri}`,
    interfaces: r.interfaces.map((itf, ii) => {
      take(itf.subnet, itf.address, `topology.routers[${ri}].interfaces[${ii}].subnet`);
      const sub = byName.get(itf.subnet)!;
      const si = subnets.indexOf(sub);
      return { subnet: itf.subnet, ifName: `s${si}`, fabricIf: `r${ri}s${si}`, address: itf.address, prefixLength: sub.prefixLength, mtu: sub.mtu };
    }),
    routes: (r.staticRoutes ?? []).map((s) => ({ dst: Prefix.parse(s.dst).toString(), via: s.via })),
  }));
  // Routes between routers: breadth-first over routers sharing a subnet, like the simulator's.
  for (const router of routers) {
    const attached = new Set(router.interfaces.map((i) => i.subnet));
    const seen = new Set(attached);
    let frontier: { subnet: string; via: string | undefined }[] = [...attached].map((s) => ({ subnet: s, via: undefined }));
    while (frontier.length > 0) {
      const next: { subnet: string; via: string | undefined }[] = [];
      for (const f of frontier) {
        for (const other of routers) {
          if (other === router) continue;
          const on = other.interfaces.find((i) => i.subnet === f.subnet);
          if (!on) continue;
          for (const itf of other.interfaces) {
            if (seen.has(itf.subnet)) continue;
            seen.add(itf.subnet);
            const via = f.via ?? on.address;
            router.routes.push({ dst: byName.get(itf.subnet)!.cidr, via });
            next.push({ subnet: itf.subnet, via });
          }
        }
      }
      frontier = next;
    }
  }

  const host = (init: { name: string; ns: string; subnet: string; address: string; fabricIf: string }): PlannedHost => {
    const sub = byName.get(init.subnet)!;
    return { ...init, prefixLength: sub.prefixLength, mtu: sub.mtu, ...(sub.gateway !== undefined ? { gateway: sub.gateway } : {}) };
  };
  const externals: PlannedHost[] = (topo.externals ?? []).map((e, ei) => {
    take(e.subnet, e.address, `topology.externals[${ei}].subnet`);
    return host({ name: e.name, ns: `${prefix}-ext-${ei}`, subnet: e.subnet, address: e.address, fabricIf: `x${ei}` });
  });
  const withExternal = new Set((topo.externals ?? []).map((e) => e.subnet));
  const nodeSubnetsRaw = subnets.filter((s) => !withExternal.has(s.name));
  const nodeSubnets = nodeSubnetsRaw.length > 0 ? nodeSubnetsRaw : subnets;

  // etcd lives on the first node subnet, at its last host address.
  const first = nodeSubnets[0]!;
  const firstPrefix = Prefix.parse(first.cidr);
  const infraAddress = firstPrefix.nth(firstPrefix.size - 2n);
  take(first.name, infraAddress, "topology.subnets");
  const infra = host({ name: "infra", ns: `${prefix}-infra`, subnet: first.name, address: infraAddress, fabricIf: "infra" });

  const nextFree = (sub: PlannedSubnet): string => {
    const p = Prefix.parse(sub.cidr);
    const set = used.get(sub.name)!;
    for (let v = p.base + 10n; v < p.last; v++) {
      const a = formatAddress(v, 4);
      if (set.has(a) || a === sub.gateway) continue;
      return a;
    }
    return fail("nodes", `subnet ${sub.name} (${sub.cidr}) has no free address left for another node`, options.nodes);
  };
  const nodes: PlannedNode[] = [];
  for (let i = 1; i <= options.nodes; i++) {
    const sub = nodeSubnets[(i - 1) % nodeSubnets.length]!;
    const address = nextFree(sub);
    used.get(sub.name)!.add(address);
    const nodeName = `node-${i}`;
    const dir = `${stateDir}/${nodeName}`;
    nodes.push({
      ...host({ name: nodeName, ns: `${prefix}-${nodeName}`, subnet: sub.name, address, fabricIf: `n${i}` }),
      index: i,
      dir,
      socketPath: `${dir}/cnikitd.sock`,
      configPath: `${dir}/cnikitd.json`,
      logPath: `${dir}/cnikitd.log`,
      peerPort: PEER_PORT,
    });
  }
  return {
    name,
    prefix,
    stateDir,
    fabricNs: `${prefix}-fabric`,
    subnets,
    routers,
    externals,
    infra,
    nodes,
    etcd: {
      address: infraAddress,
      port: ETCD_PORT,
      clientUrl: `http://${infraAddress}:${ETCD_PORT}`,
      dataDir: `${stateDir}/etcd`,
      logPath: `${stateDir}/etcd.log`,
    },
  };
}

/** Whether `address` parses as an IPv4 address (helper for validation of user input). */
export function isIpv4(address: string): boolean {
  try {
    return parseAddress(address).family === 4;
  } catch {
    return false;
  }
}
