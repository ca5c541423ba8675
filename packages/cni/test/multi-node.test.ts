/**
 * Two cnikitd daemons in one process, sharing a cluster store, each with its own node-local store,
 * fake renderer and a real TCP peer transport on 127.0.0.1 (found through `/cnikit/daemons/<node>`):
 * calico's BGP sessions run over real TCP and each node learns the other's pod routes; flannel's
 * nodes learn each other's leases through the store.
 */
import { builtinBackend } from "@cnikit/backends";
import { MemoryDatastore, Prefix, RealClock, memoryLogger, seededRandom } from "@cnikit/core";
import type { Datastore, NodeInfo, PeerTransport } from "@cnikit/core";
import { afterEach, describe, expect, it } from "vitest";
import { CniDaemon } from "../src/daemon.ts";
import { DAEMON_PREFIX, openPeerTransport } from "../src/daemon-config.ts";
import { FakeApplier, netconf, until } from "./helpers.ts";

interface Node {
  daemon: CniDaemon;
  applier: FakeApplier;
  transport: PeerTransport;
  /** Connections this node's transport opened or accepted, per service. */
  sessions: Record<string, number>;
  close(): void;
}

/** Wraps a transport to count the connections it opens and accepts. */
function counted(inner: PeerTransport, sessions: Record<string, number>): PeerTransport {
  const bump = (service: string) => (sessions[service] = (sessions[service] ?? 0) + 1);
  return {
    get self() {
      return inner.self;
    },
    listen: (service, onConnection) =>
      inner.listen(service, (c) => {
        bump(service);
        onConnection(c);
      }),
    connect: async (peer, service) => {
      const c = await inner.connect(peer, service);
      bump(service);
      return c;
    },
    sendDatagram: (peer, service, m) => inner.sendDatagram(peer, service, m),
    onDatagram: (service, h) => inner.onDatagram(service, h),
    close: () => inner.close(),
  };
}

const nodes: Node[] = [];
afterEach(async () => {
  for (const n of nodes.splice(0)) {
    await n.daemon.stop();
    n.close();
  }
});

function nodeInfo(i: number): NodeInfo {
  return { name: `node-${i}`, underlay: [{ iface: "eth0", address: `192.0.2.${10 + i}`, prefixLength: 24 }] };
}

async function startNode(backendName: string, backendConfig: unknown, store: Datastore, i: number): Promise<Node> {
  const clock = new RealClock();
  const node = nodeInfo(i);
  const { logger } = memoryLogger({ level: "warn" });
  const peers = await openPeerTransport({ store, node, listen: { host: "127.0.0.1", port: 0 }, log: logger });
  const applier = new FakeApplier();
  const sessions: Record<string, number> = {};
  const daemon = new CniDaemon({
    backend: builtinBackend(backendName).backend,
    backendConfig,
    node,
    store,
    local: new MemoryDatastore({ clock }),
    peers: counted(peers.transport, sessions),
    applier,
    clock,
    log: logger,
    random: seededRandom(i),
  });
  const n: Node = { daemon, applier, transport: peers.transport, sessions, close: peers.close };
  nodes.push(n);
  await daemon.start();
  await daemon.agentStarted;
  return n;
}

async function add(n: Node, cid: string): Promise<string> {
  const r = await n.daemon.handle({ CNI_COMMAND: "ADD", CNI_CONTAINERID: cid, CNI_NETNS: `/var/run/netns/${cid}`, CNI_IFNAME: "eth0" }, netconf());
  expect(r.exitCode).toBe(0);
  return (JSON.parse(r.stdout) as { ips: { address: string }[] }).ips[0]!.address.split("/")[0]!;
}

/** Whether `n`'s applied dataplane routes `address` via `via`. */
function routes(n: Node, address: string, via: string): boolean {
  const dp = n.applier.last;
  return dp?.routes.some((r) => r.via === via && r.origin === "bgp" && Prefix.parse(r.dst).contains(address)) ?? false;
}

describe("two daemons over real TCP", () => {
  it("calico: BGP over the TCP peer transport carries each node's pod routes to the other", async () => {
    const store = new MemoryDatastore({ clock: new RealClock() });
    const config = [{ apiVersion: "projectcalico.org/v3", kind: "IPPool", metadata: { name: "default-ipv4-ippool" }, spec: { cidr: "10.244.0.0/16", natOutgoing: true } }];
    const a = await startNode("calico", config, store, 1);
    const b = await startNode("calico", config, store, 2);
    const published = (await store.list(DAEMON_PREFIX)).items.map((kv) => [kv.key, JSON.parse(kv.value) as { host: string }]);
    expect(published.map(([k]) => k)).toEqual([`${DAEMON_PREFIX}node-1`, `${DAEMON_PREFIX}node-2`]);
    const podA = await add(a, "pod-a");
    const podB = await add(b, "pod-b");
    await until(() => routes(b, podA, "192.0.2.11") && routes(a, podB, "192.0.2.12"), 30_000, "routes learned over BGP");
    expect(routes(a, podA, "192.0.2.12")).toBe(false);
    // The sessions ran over TCP: one side dialled, the other accepted.
    expect((a.sessions["bgp"] ?? 0) + (b.sessions["bgp"] ?? 0)).toBeGreaterThanOrEqual(2);
    expect(a.sessions["bgp"]).toBeGreaterThanOrEqual(1);
    expect(b.sessions["bgp"]).toBeGreaterThanOrEqual(1);
  });

  it("flannel: each node routes the other's subnet through the vxlan device", async () => {
    const store = new MemoryDatastore({ clock: new RealClock() });
    const config = { Network: "10.244.0.0/16", Backend: { Type: "vxlan" } };
    const a = await startNode("flannel", config, store, 1);
    const b = await startNode("flannel", config, store, 2);
    const podA = await add(a, "pod-a");
    const podB = await add(b, "pod-b");
    const viaVxlan = (n: Node, address: string) => n.applier.last?.routes.some((r) => r.dev?.startsWith("flannel.") && Prefix.parse(r.dst).contains(address)) ?? false;
    await until(() => viaVxlan(b, podA) && viaVxlan(a, podB), 20_000, "flannel routes to the other node's subnet");
  });
});
