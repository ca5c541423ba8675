/**
 * The "bird-mesh" comparison target of a kernel run: BIRD 2 (Debian bird2) in each node namespace
 * of a lab, a full iBGP mesh configured the way Calico configures its BIRD for the node-to-node
 * mesh, started and stopped by PID (bgp-utils-free/testing's launcher). Each node originates one
 * block of the calico config's pool as a blackhole route and programs the other nodes' blocks into
 * its kernel with the peer as next hop — what calico-node does with no encapsulation, where BIRD
 * programs the routes.
 *
 * Calico's settings (projectcalico/calico, confd/etc/calico/confd/templates/bird.cfg.template and
 * bird_aggr.cfg.template / bird_ipam.cfg.template, v3.2x):
 *  - `router id` = the node's IPv4 address; every mesh peer `from bgp_template` with
 *    `local as 64512` (Calico's default AS), `multihop`, `gateway recursive`, `import all`,
 *    `export filter calico_export_to_bgp_peers`, `add paths on`, `graceful restart`,
 *    `connect delay time 2`, `connect retry time 5`, `error wait time 5,30`; hold and keepalive
 *    are BIRD's defaults (240 s / 80 s), graceful restart time BIRD's default (120 s);
 *  - `source address` = the node's address; between two nodes the one with the greater address
 *    (compared as text) is `passive on` ("Mesh is unidirectional, peer will connect to us");
 *  - `protocol kernel`: `learn`, `persist`, `scan time 2`, `import all`,
 *    `export filter calico_kernel_programming`, `graceful restart`, `merge paths on`;
 *    `protocol device { scan time 2; }`; `protocol direct` on every interface but cali*;
 *  - the node's blocks as `route <block> blackhole` in a static protocol, exported as aggregates:
 *    `calico_aggr` accepts the block itself and rejects what lies inside it; the pool's other
 *    routes are exported, nothing else.
 * Calico's BIRD is a fork of BIRD 1.6 (`krt_tunnel` for IPIP); here it is Debian's BIRD 2, with the
 * same settings in BIRD 2 syntax (channels), and no tunnel attribute (no encapsulation).
 */
import { ConfigError, Prefix } from "@cnikit/core";
import type { NetworkSummary } from "@cnikit/core";
import type { Lab } from "@cnikit/lab";
import { Bird, requireBinary } from "bgp-utils-free/testing";
import type { KernelTarget } from "./linux.ts";

/** Calico's default AS number (BGPConfiguration asNumber). */
export const CALICO_AS = 64512;
/** Calico's default IPv4 block size. */
export const CALICO_BLOCK_LENGTH = 26;

/** A node of the mesh: its name, underlay address and the block it originates. */
export interface BirdMeshNode {
  name: string;
  address: string;
  block: string;
}

/** The protocol name Calico gives a mesh peer: `Mesh_` and its address with `_` for dots. */
export function meshProtocolName(address: string): string {
  return `Mesh_${address.replace(/[.:]/g, "_")}`;
}

/** bird.conf of `self` in a full mesh with `peers`, Calico's settings (see the module comment). */
export function calicoBirdConfig(init: { self: BirdMeshNode; peers: readonly BirdMeshNode[]; pool: string }): string {
  const { self, peers, pool } = init;
  return `${[
    `# cnikit-bench bird-mesh: node ${self.name}, Calico's node-to-node mesh settings (confd bird.cfg.template) in BIRD 2 syntax`,
    `router id ${self.address};`,
    "",
    "# bird_aggr.cfg: the node's blocks, exported as aggregates",
    `protocol static {\n  ipv4;\n  route ${self.block} blackhole;\n}`,
    `function calico_aggr() {\n  if ( net = ${self.block} ) then { accept; }\n  if ( net ~ ${self.block} ) then { reject; }\n}`,
    "",
    "# bird_ipam.cfg",
    `filter calico_export_to_bgp_peers {\n  calico_aggr();\n  if ( net ~ ${pool} ) then {\n    accept;\n  }\n  reject;\n}`,
    `filter calico_kernel_programming {\n  accept;\n}`,
    "",
    "protocol kernel {",
    "  learn;",
    "  persist;",
    "  scan time 2;",
    "  graceful restart;",
    "  merge paths on;",
    "  ipv4 {\n    import all;\n    export filter calico_kernel_programming;\n  };",
    "}",
    "protocol device {\n  scan time 2;\n}",
    `protocol direct {\n  ipv4;\n  interface -"cali*", -"kube-ipvs*", "*";\n}`,
    "",
    "template bgp bgp_template {",
    `  local as ${CALICO_AS};`,
    "  multihop;",
    "  graceful restart;",
    "  connect delay time 2;",
    "  connect retry time 5;",
    "  error wait time 5, 30;",
    "  ipv4 {\n    import all;\n    export filter calico_export_to_bgp_peers;\n    add paths on;\n    gateway recursive;\n  };",
    "}",
    "",
    ...peers
      .filter((p) => p.name !== self.name)
      .map((p) =>
        [
          `protocol bgp ${meshProtocolName(p.address)} from bgp_template {`,
          `  neighbor ${p.address} as ${CALICO_AS};`,
          `  source address ${self.address};`,
          ...(self.address > p.address ? ["  passive on; # Mesh is unidirectional, peer will connect to us."] : []),
          "}",
        ].join("\n"),
      ),
  ].join("\n")}\n`;
}

/**
 * Checks that `summary` (a calico config's) is one BIRD programs routes for — no encapsulation —
 * and returns the pool the blocks come from. Throws `ConfigError` (field `target`) otherwise.
 */
export function birdMeshPool(backend: string, summary: NetworkSummary): Prefix {
  if (backend !== "calico") throw new ConfigError({ component: "bench", field: "target", rule: "bird-mesh is compared with calico configs only (Calico's BIRD full mesh)", value: backend });
  if (summary.encapsulations.some((e) => e !== "none")) {
    throw new ConfigError({
      component: "bench",
      field: "target",
      rule: `bird-mesh models Calico's no-encapsulation mode, where BIRD programs the routes (with IPIP or VXLAN Felix does); this config uses ${summary.encapsulations.join(", ")}`,
      value: backend,
    });
  }
  const pool = summary.podRanges.map((r) => Prefix.parse(r)).find((p) => p.family === 4 && p.length <= CALICO_BLOCK_LENGTH);
  if (!pool) throw new ConfigError({ component: "bench", field: "target", rule: `bird-mesh needs an IPv4 pool of at least one /${CALICO_BLOCK_LENGTH} block`, value: summary.podRanges });
  return pool;
}

/** Throws naming the Debian package when BIRD is not installed. */
export function requireBird(): void {
  requireBinary("bird", "bird2");
  requireBinary("birdc", "bird2");
}

/** The BIRD mesh on `lab`'s nodes (built without cnikitd): node k originates the k-th block of `pool`. */
export class BirdMeshTarget implements KernelTarget {
  private readonly birds = new Map<string, Bird>();
  private readonly nodes: Map<string, BirdMeshNode & { ns: string }>;
  /** Every BIRD PID this target started (the test checks they are gone after `close`). */
  readonly pids: number[] = [];

  constructor(
    private readonly lab: Lab,
    private readonly pool: Prefix,
  ) {
    this.nodes = new Map(lab.nodes.map((n) => [n.name, { name: n.name, address: n.address, ns: n.ns, block: pool.nthSubnet(CALICO_BLOCK_LENGTH, n.index).toString() }]));
  }

  private node(name: string): BirdMeshNode & { ns: string } {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`[bench] no node ${name} in lab ${this.lab.name}`);
    return n;
  }

  private config(name: string, members: readonly string[]): string {
    return calicoBirdConfig({ self: this.node(name), peers: members.map((m) => this.node(m)), pool: this.pool.toString() });
  }

  /** Starts BIRD on `nodes` and, as Calico's confd does on a new Node, reconfigures the running ones for `members`. */
  async start(nodes: readonly string[], members: readonly string[]): Promise<void> {
    await Promise.all([
      ...nodes.map(async (name) => {
        const bird = await Bird.launch({ configText: this.config(name, members), netns: this.node(name).ns, dirPrefix: "cnikit-bench-bird-" });
        this.birds.set(name, bird);
        this.pids.push(bird.daemon.pid);
      }),
      ...[...this.birds.keys()].filter((n) => !nodes.includes(n)).map((name) => this.birds.get(name)!.reconfigure(this.config(name, members))),
    ]);
  }

  /** Stops `node`'s BIRD with SIGTERM (Cease to its peers), and drops it from the others' config as confd would. */
  async leave(node: string, members: readonly string[]): Promise<void> {
    const bird = this.birds.get(node);
    this.birds.delete(node);
    await Promise.all([bird?.stop(), ...[...this.birds.keys()].map((name) => this.birds.get(name)!.reconfigure(this.config(name, members)))]);
  }

  /** Kills `node`'s BIRD with SIGKILL: the kernel closes its sessions, no Cease (graceful restart keeps its routes stale on the peers). */
  async crash(node: string): Promise<void> {
    const bird = this.birds.get(node);
    this.birds.delete(node);
    await bird?.kill();
  }

  /** Stops every BIRD by its PID. Idempotent. */
  async close(): Promise<void> {
    const all = [...this.birds.values()];
    this.birds.clear();
    await Promise.all(all.map((b) => b.stop()));
  }
}
