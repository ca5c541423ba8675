import { afterEach, describe, expect, it } from "vitest";
import { KUBE_PREFIX, MemoryDatastore, VirtualClock, memoryLogger } from "@cnikit/core";
import type { Datastore, FilterPolicy, LeaseId } from "@cnikit/core";
import {
  PolicyComponent,
  compileNodeFilters,
  decodeDirectoryPod,
  emptyPolicySnapshot,
  directoryPodOf,
  externalPodDirectory,
  parsePolicyObject,
  planPolicy,
  podDirectoryPrefix,
  publishedPodDirectory,
} from "../src/index.ts";
import type { LocalPolicyPod, PodDirectory } from "../src/index.ts";

const PREFIX = podDirectoryPrefix("testnet");
const RESYNC_MS = 10_000;

const web: LocalPolicyPod = {
  containerId: "c-web",
  ifName: "eth0",
  namespace: "prod",
  podName: "web",
  labels: { app: "web" },
  ports: [{ name: "http", containerPort: 8080 }],
  ips: ["10.0.1.2"],
  hostIf: "vethweb",
};
const client: LocalPolicyPod = { containerId: "c-client", ifName: "eth0", namespace: "prod", podName: "client", labels: { app: "client" }, ips: ["10.0.2.2"], hostIf: "vethclient" };

/** Only pods labelled app=client may reach app=web on its named port. */
const webPolicy = {
  apiVersion: "networking.k8s.io/v1",
  kind: "NetworkPolicy",
  metadata: { name: "web", namespace: "prod" },
  spec: { podSelector: { matchLabels: { app: "web" } }, policyTypes: ["Ingress"], ingress: [{ from: [{ podSelector: { matchLabels: { app: "client" } } }], ports: [{ port: "http" }] }] },
};
const policyKey = `${KUBE_PREFIX.networkPolicies}prod/web`;

/** A store whose writes under `failPrefix` fail while `failing` is set (as a store that is briefly away would). */
function flakyStore(inner: Datastore, failPrefix: string): { store: Datastore; setFailing: (on: boolean) => void } {
  let failing = false;
  const fail = (key: string): void => {
    if (failing && key.startsWith(failPrefix)) throw new Error(`injected failure writing ${key}`);
  };
  const store: Datastore = Object.create(inner) as Datastore;
  store.put = async (key, value, options) => {
    fail(key);
    return inner.put(key, value, options);
  };
  store.delete = async (key, options) => {
    fail(key);
    return inner.delete(key, options);
  };
  store.list = async (prefix) => {
    fail(prefix);
    return inner.list(prefix);
  };
  return { store, setFailing: (on) => (failing = on) };
}

interface Node {
  component: PolicyComponent;
  lease: LeaseId;
  changes: () => number;
  warnings: () => string[];
}

const started: PolicyComponent[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((c) => c.stop()));
});

async function node(options: { name: string; store: Datastore; clock: VirtualClock; directory?: PodDirectory; lease?: LeaseId | null }): Promise<Node> {
  const lease = options.lease === null ? undefined : (options.lease ?? (await options.store.grantLease(30)));
  const logger = memoryLogger({ clock: options.clock });
  const component = new PolicyComponent({
    store: options.store,
    clock: options.clock,
    log: logger.logger,
    node: options.name,
    directory: options.directory ?? publishedPodDirectory(PREFIX),
    component: "testnet",
    resyncMs: RESYNC_MS,
    ...(lease !== undefined ? { lease } : {}),
  });
  started.push(component);
  let changes = 0;
  component.onChange(() => changes++);
  await component.start();
  return { component, lease: lease ?? "", changes: () => changes, warnings: () => logger.records.filter((r) => r.level === "warn").map((r) => r.msg) };
}

/** Lets queued writes and watch events settle (virtual time does not move). */
async function settle(clock: VirtualClock): Promise<void> {
  await clock.advance(0);
  await clock.advance(0);
}

function remoteNames(n: Node): string[] {
  return n.component.snapshot().remotePods.map((p) => `${p.node}:${p.namespace}/${p.name}`);
}

function acceptedInto(filters: FilterPolicy[], pod: string): string[] {
  const ingress = filters.find((f) => f.pod === pod && f.direction === "ingress");
  return (ingress?.rules ?? []).filter((r) => r.action === "accept" && r.id !== "np/node-local").flatMap((r) => (r.peers ?? []).flatMap((p) => p.cidrs));
}

function fixture() {
  const clock = new VirtualClock();
  const store = new MemoryDatastore({ clock });
  return { clock, store };
}

/** Nodes n1 and n2 on one store, with `pods[0]` added on n1 and `pods[1]` on n2, settled. */
async function twoNodes(pods: { n1?: LocalPolicyPod[]; n2?: LocalPolicyPod[] }) {
  const { clock, store } = fixture();
  const n1 = await node({ name: "n1", store, clock });
  const n2 = await node({ name: "n2", store, clock });
  for (const pod of pods.n1 ?? []) n1.component.podAdded(pod);
  for (const pod of pods.n2 ?? []) n2.component.podAdded(pod);
  await settle(clock);
  return { clock, store, n1, n2 };
}

describe("PolicyComponent with the published pod directory", () => {
  it("two nodes' components see each other's pods, with labels, ports and addresses", async () => {
    const { store, n1, n2 } = await twoNodes({ n1: [web], n2: [client] });

    expect(remoteNames(n1)).toEqual(["n2:prod/client"]);
    expect(remoteNames(n2)).toEqual(["n1:prod/web"]);
    expect(n2.component.snapshot().remotePods[0]).toEqual({
      node: "n1",
      key: "c-web/eth0",
      namespace: "prod",
      name: "web",
      labels: { app: "web" },
      ips: ["10.0.1.2"],
      ports: [{ name: "http", containerPort: 8080, protocol: "TCP" }],
      hostIf: "vethweb",
    });
    // A node's own pods are the agent's (localPods), never part of its snapshot.
    expect(n1.component.localPods().map((p) => p.key)).toEqual(["c-web/eth0"]);
    // Published under the backend's prefix, attached to the node's lease.
    const kv = await store.get(`${PREFIX}n1/c-web/eth0`);
    expect(kv?.lease).toBe(n1.lease);
  });

  it("a policy put changes the compiled filters and notifies; its delete restores no filtering", async () => {
    const { clock, store, n1, n2 } = await twoNodes({ n1: [web], n2: [client] });
    const compile = () => compileNodeFilters({ snapshot: n1.component.snapshot(), local: n1.component.localPods(), nodeAddresses: ["192.0.2.1"] });
    expect(compile()).toEqual([]);

    const before = n1.changes();
    await store.put(policyKey, JSON.stringify(webPolicy));
    await settle(clock);
    expect(n1.changes()).toBeGreaterThan(before);
    expect(n1.component.snapshot().policies.map((p) => `${p.namespace}/${p.name}`)).toEqual(["prod/web"]);
    const filters = compile();
    expect(filters.map((f) => `${f.pod} ${f.direction} ${f.defaultAction}`)).toEqual(["c-web/eth0 ingress drop"]);
    expect(acceptedInto(filters, "c-web/eth0")).toEqual(["10.0.2.2/32"]);
    // The named port resolved against the local pod's container port.
    const rule = filters[0]!.rules.find((r) => r.id !== "np/node-local");
    expect(rule?.ports).toEqual([{ from: 8080, to: 8080 }]);

    // Relabelling the remote client (a re-ADD on n2) takes it out of the allowed peers.
    n2.component.podAdded({ ...client, labels: { app: "other" } });
    await settle(clock);
    expect(acceptedInto(compile(), "c-web/eth0")).toEqual([]);

    await store.delete(policyKey);
    await settle(clock);
    expect(n1.component.snapshot().policies).toEqual([]);
    expect(compile()).toEqual([]);
  });

  it("a pod removed on one node disappears from the other's snapshot", async () => {
    const { clock, store, n1, n2 } = await twoNodes({ n1: [web, client] });
    expect(remoteNames(n2)).toEqual(["n1:prod/client", "n1:prod/web"]);

    n1.component.podRemoved(web);
    await settle(clock);
    expect(remoteNames(n2)).toEqual(["n1:prod/client"]);
    expect(await store.get(`${PREFIX}n1/c-web/eth0`)).toBeUndefined();
    // Removing an unknown pod is a no-op.
    n1.component.podRemoved({ containerId: "nope", ifName: "eth0" });
    await settle(clock);
    expect(remoteNames(n2)).toEqual(["n1:prod/client"]);
  });

  it("a crashed node's pods vanish with its lease", async () => {
    const { clock, store, n2 } = await twoNodes({ n1: [web] });
    expect(remoteNames(n2)).toEqual(["n1:prod/web"]);

    // n2 keeps its lease alive; n1 has crashed and does not. Its pods go when the TTL runs out.
    const keepAlive = clock.setInterval(() => void store.keepAlive(n2.lease), 10_000);
    try {
      await clock.advance(29_000);
      expect(remoteNames(n2)).toEqual(["n1:prod/web"]);
      await clock.advance(2_000);
      expect(remoteNames(n2)).toEqual([]);
    } finally {
      keepAlive.cancel();
    }
  });

  it("ownLease: the component holds its own lease alive, replaces one that expired, and revokes it on release", async () => {
    const { clock, store } = fixture();
    const observer = await node({ name: "n2", store, clock });
    const logger = memoryLogger({ clock });
    const own = new PolicyComponent({
      store,
      clock,
      log: logger.logger,
      node: "n1",
      directory: publishedPodDirectory(PREFIX),
      component: "testnet",
      resyncMs: RESYNC_MS,
      ownLease: { ttlSeconds: 30 },
    });
    started.push(own);
    await own.start();
    own.podAdded(web);
    await settle(clock);
    expect(remoteNames(observer)).toEqual(["n1:prod/web"]);
    // Kept alive well past the TTL: the pod stays published.
    const keepObserver = clock.setInterval(() => void store.keepAlive(observer.lease), 10_000);
    try {
      await clock.advance(95_000);
      expect(remoteNames(observer)).toEqual(["n1:prod/web"]);
      // The lease is revoked behind its back (as an expiry while the store was away): the next
      // renewal grants a new one and re-publishes the pod under it.
      const [record] = (await store.list(PREFIX)).items;
      expect(record?.lease).toBeDefined();
      await store.revokeLease(record!.lease!);
      await settle(clock);
      expect(remoteNames(observer)).toEqual([]);
      await clock.advance(10_000);
      await settle(clock);
      expect(remoteNames(observer)).toEqual(["n1:prod/web"]);
      const [again] = (await store.list(PREFIX)).items;
      expect(again?.lease).not.toBe(record!.lease);
      // A release revokes it: the pod leaves the directory at once.
      await own.stop();
      await own.revokeOwnLease();
      await settle(clock);
      expect(remoteNames(observer)).toEqual([]);
    } finally {
      keepObserver.cancel();
    }
  });

  it("refuses ownLease together with lease, and a TTL below 3 s", async () => {
    const { clock, store } = fixture();
    const base = { store, clock, log: memoryLogger({ clock }).logger, node: "n1", directory: publishedPodDirectory(PREFIX) };
    const lease = await store.grantLease(30);
    expect(() => new PolicyComponent({ ...base, lease, ownLease: { ttlSeconds: 30 } })).toThrow(expect.objectContaining({ code: 7, field: "ownLease" }));
    expect(() => new PolicyComponent({ ...base, ownLease: { ttlSeconds: 2 } })).toThrow(expect.objectContaining({ code: 7, field: "ownLease.ttlSeconds" }));
  });

  it("a failed publish neither throws nor blocks the ADD path, and is retried at the next resync", async () => {
    const { clock, store: inner } = fixture();
    const { store, setFailing } = flakyStore(inner, PREFIX);
    const n1 = await node({ name: "n1", store, clock });
    const n2 = await node({ name: "n2", store: inner, clock });
    setFailing(true);
    expect(n1.component.podAdded(web)).toBeUndefined();
    await settle(clock);
    expect(remoteNames(n2)).toEqual([]);
    expect(n1.warnings().some((w) => w.includes("could not publish pod c-web/eth0") && w.includes("injected failure"))).toBe(true);

    // Still failing at the first resync: nothing published, still dirty.
    await clock.advance(RESYNC_MS);
    expect(remoteNames(n2)).toEqual([]);

    setFailing(false);
    await clock.advance(RESYNC_MS);
    expect(remoteNames(n2)).toEqual(["n1:prod/web"]);

    // A failed unpublish is repaired the same way: the stale record goes at the next resync.
    setFailing(true);
    n1.component.podRemoved(web);
    await settle(clock);
    expect(remoteNames(n2)).toEqual(["n1:prod/web"]);
    setFailing(false);
    await clock.advance(RESYNC_MS);
    expect(remoteNames(n2)).toEqual([]);
  });

  it("publishes under a new lease when the agent re-grants one, and waits while it has none", async () => {
    const { clock, store } = fixture();
    const n1 = await node({ name: "n1", store, clock, lease: null });
    const n2 = await node({ name: "n2", store, clock });
    n1.component.podAdded(web);
    await settle(clock);
    expect(remoteNames(n2)).toEqual([]);

    const regrant = async (): Promise<LeaseId> => {
      const lease = await store.grantLease(30);
      n1.component.setLease(lease);
      await settle(clock);
      expect(remoteNames(n2)).toEqual(["n1:prod/web"]);
      expect((await store.get(`${PREFIX}n1/c-web/eth0`))?.lease).toBe(lease);
      return lease;
    };
    const lease = await regrant();
    // The lease is lost (revoked): the record goes; a new lease brings it back.
    await store.revokeLease(lease);
    await settle(clock);
    expect(remoteNames(n2)).toEqual([]);
    await regrant();
  });

  it("a node's record deleted under a live pod is written back at the next resync", async () => {
    const { clock, store, n2 } = await twoNodes({ n1: [web] });
    await store.delete(`${PREFIX}n1/c-web/eth0`);
    await settle(clock);
    expect(remoteNames(n2)).toEqual([]);
    await clock.advance(RESYNC_MS);
    expect(remoteNames(n2)).toEqual(["n1:prod/web"]);
  });

  it("a restarted node deletes its records of pods it no longer has and re-publishes the rest", async () => {
    const { clock, store } = fixture();
    const lease = await store.grantLease(30);
    const first = await node({ name: "n1", store, clock, lease });
    first.component.podAdded(web);
    first.component.podAdded(client);
    await settle(clock);
    await first.component.stop();

    // Only web survived the restart (the agent restores it from local state before start).
    const again = new PolicyComponent({ store, clock, log: memoryLogger().logger, node: "n1", directory: publishedPodDirectory(PREFIX), lease, resyncMs: RESYNC_MS });
    started.push(again);
    again.podAdded(web);
    await again.start();
    await settle(clock);
    expect((await store.list(`${PREFIX}n1/`)).items.map((kv) => kv.key)).toEqual([`${PREFIX}n1/c-web/eth0`]);
  });

  it("two backends with their own prefixes never see each other's pods", async () => {
    const { clock, store } = fixture();
    const a1 = await node({ name: "n1", store, clock, directory: publishedPodDirectory(podDirectoryPrefix("alpha")) });
    const b2 = await node({ name: "n2", store, clock, directory: publishedPodDirectory(podDirectoryPrefix("beta")) });
    const a2 = await node({ name: "n2", store, clock, directory: publishedPodDirectory(podDirectoryPrefix("alpha")) });
    a1.component.podAdded(web);
    await settle(clock);
    expect(remoteNames(a2)).toEqual(["n1:prod/web"]);
    expect(remoteNames(b2)).toEqual([]);
  });

  it("ignores an unreadable or misfiled record with a warning naming its key", async () => {
    const { clock, store } = fixture();
    await store.put(`${PREFIX}n9/c1/eth0`, "{not json");
    const misfiled = { node: "n8", key: "c2/eth0", namespace: "prod", name: "x", labels: {}, ips: ["10.0.9.9"], ports: [] };
    await store.put(`${PREFIX}n9/c2/eth0`, JSON.stringify(misfiled));
    const n1 = await node({ name: "n1", store, clock });
    expect(remoteNames(n1)).toEqual([]);
    expect(n1.warnings().some((w) => w.includes(`${PREFIX}n9/c1/eth0`))).toBe(true);
    expect(n1.warnings().some((w) => w.includes(`${PREFIX}n9/c2/eth0`) && w.includes("must match"))).toBe(true);
    // Re-listings do not repeat the warning; a new version of the record is warned about again.
    await clock.advance(2 * RESYNC_MS);
    expect(n1.warnings().filter((w) => w.includes(`${PREFIX}n9/c1/eth0`))).toHaveLength(1);
    await store.put(`${PREFIX}n9/c1/eth0`, "{still not json");
    await settle(clock);
    expect(n1.warnings().filter((w) => w.includes(`${PREFIX}n9/c1/eth0`))).toHaveLength(2);
  });

  it("stop() cancels watches, timers and queued writes; nothing is reported or written afterwards", async () => {
    const { clock, store } = fixture();
    const n2 = await node({ name: "n2", store, clock });
    const lease = await store.grantLease(3600);
    const timersBefore = clock.pending();
    const n1 = await node({ name: "n1", store, clock, lease });
    expect(clock.pending()).toBeGreaterThan(timersBefore);
    n2.component.podAdded(client);
    await store.put(policyKey, JSON.stringify(webPolicy));
    await settle(clock);
    const snapshot = n1.component.snapshot();
    const changes = n1.changes();

    await n1.component.stop();
    // n1's re-lists and resync timer are gone; n2's and the leases' remain.
    expect(clock.pending()).toBe(timersBefore);
    n1.component.podAdded(web);
    await store.delete(policyKey);
    n2.component.podRemoved(client);
    await clock.advance(3 * RESYNC_MS);
    expect(n1.changes()).toBe(changes);
    expect(n1.component.snapshot()).toBe(snapshot);
    expect(await store.get(`${PREFIX}n1/c-web/eth0`)).toBeUndefined();
    await expect(n1.component.start()).rejects.toMatchObject({ code: 7, field: "start" });
  });

  it("an aborted start signal stops the component", async () => {
    const { clock, store } = fixture();
    const abort = new AbortController();
    const c = new PolicyComponent({ store, clock, log: memoryLogger().logger, node: "n1", directory: publishedPodDirectory(PREFIX), resyncMs: RESYNC_MS });
    started.push(c);
    const timersBefore = clock.pending();
    await c.start(abort.signal);
    expect(clock.pending()).toBeGreaterThan(timersBefore);
    abort.abort();
    await settle(clock);
    expect(clock.pending()).toBe(timersBefore);
  });

  it("a failed first listing rejects start with the store's error, and start may be retried", async () => {
    const { clock, store } = fixture();
    store.setAvailable(false);
    const c = new PolicyComponent({ store, clock, log: memoryLogger().logger, node: "n1", directory: publishedPodDirectory(PREFIX), resyncMs: RESYNC_MS });
    started.push(c);
    await expect(c.start()).rejects.toMatchObject({ code: 11 });
    store.setAvailable(true);
    await store.put(policyKey, JSON.stringify(webPolicy));
    await c.start();
    expect(c.snapshot().policies).toHaveLength(1);
  });
});

describe("PolicyComponent with a backend's own endpoint records", () => {
  const ENDPOINTS = "/testnet/endpoints/";
  const directory = externalPodDirectory({ prefix: ENDPOINTS, decode: decodeDirectoryPod });

  it("reads the backend's records and never writes to the store itself", async () => {
    const { clock, store } = fixture();
    const n1 = await node({ name: "n1", store, clock, directory, lease: null });
    await store.put(`${ENDPOINTS}n2/c-client/eth0`, JSON.stringify({ node: "n2", key: "c-client/eth0", namespace: "prod", name: "client", labels: { app: "client" }, ips: ["10.0.2.2"] }));
    await store.put(`${ENDPOINTS}n1/c-web/eth0`, JSON.stringify({ node: "n1", key: "c-web/eth0", namespace: "prod", name: "web", labels: { app: "web" }, ips: ["10.0.1.2"] }));
    await settle(clock);
    const revision = await store.revision();
    n1.component.podAdded(web);
    n1.component.podRemoved(web);
    n1.component.podAdded(web);
    await clock.advance(2 * RESYNC_MS);
    expect(await store.revision()).toBe(revision);
    // Its own node's record is the agent's business: only n2's pod is remote.
    expect(remoteNames(n1)).toEqual(["n2:prod/client"]);

    await store.put(policyKey, JSON.stringify(webPolicy));
    await settle(clock);
    const filters = compileNodeFilters({ snapshot: n1.component.snapshot(), local: n1.component.localPods(), nodeAddresses: [] });
    expect(acceptedInto(filters, "c-web/eth0")).toEqual(["10.0.2.2/32"]);

    await store.delete(`${ENDPOINTS}n2/c-client/eth0`);
    await settle(clock);
    expect(remoteNames(n1)).toEqual([]);
  });
});

describe("compileNodeFilters", () => {
  it("is empty without policies, and the local pods stand in for the node's pods", () => {
    const snapshot = emptyPolicySnapshot("n1");
    expect(compileNodeFilters({ snapshot, local: [], nodeAddresses: [] })).toEqual([]);
    const policy = parsePolicyObject({ apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { namespace: "prod", name: "deny" }, spec: { podSelector: {}, policyTypes: ["Ingress"] } });
    const withPolicy = { ...snapshot, policies: [policy] };
    const local = [{ namespace: "prod", name: "web", labels: {}, ips: ["10.0.1.2"], ports: [], key: "c-web/eth0", node: "elsewhere" }];
    const filters = compileNodeFilters({ snapshot: withPolicy, local, nodeAddresses: ["192.0.2.1"] });
    // The local pod is taken to be on the snapshot's node whatever it says; its namespace (absent
    // from the store) gets its name label; the node's own address is always allowed.
    expect(filters.map((f) => `${f.pod} ${f.direction} ${f.defaultAction}`)).toEqual(["c-web/eth0 ingress drop"]);
    expect(filters[0]!.rules.find((r) => r.id === "np/node-local")?.peers).toEqual([{ cidrs: ["192.0.2.1/32"] }]);
    // Same input, same output.
    expect(compileNodeFilters({ snapshot: withPolicy, local, nodeAddresses: ["192.0.2.1"] })).toEqual(filters);
  });
});

describe("planPolicy", () => {
  it("compiles the plan's own pod records against the snapshot, for the snapshot's node only", async () => {
    const { clock, store, n1 } = await twoNodes({ n2: [client] });
    await store.put(policyKey, JSON.stringify(webPolicy));
    await settle(clock);
    const snapshot = n1.component.snapshot();
    const policy = planPolicy(snapshot, (pod: LocalPolicyPod) => directoryPodOf("n1", pod));
    const viaPlan = policy.filtersFor({ node: "n1", pods: [web], nodeAddresses: ["192.0.2.1"] });
    expect(viaPlan).toEqual(compileNodeFilters({ snapshot, local: [directoryPodOf("n1", web)], nodeAddresses: ["192.0.2.1"] }));
    expect(acceptedInto(viaPlan, "c-web/eth0")).toEqual(["10.0.2.2/32"]);
    expect(() => policy.filtersFor({ node: "n2", pods: [], nodeAddresses: [] })).toThrow(expect.objectContaining({ code: 7, field: "node" }));
  });
});

describe("pod directory configuration", () => {
  it("refuses prefixes that are not folders or that overlap the Kubernetes objects, naming the field", () => {
    expect(() => publishedPodDirectory("cnikit/pods")).toThrow(expect.objectContaining({ code: 7, field: "podDirectory.prefix" }));
    expect(() => publishedPodDirectory("/cnikit/kube/")).toThrow(expect.objectContaining({ code: 7, field: "podDirectory.prefix" }));
    expect(() => podDirectoryPrefix("Not A Name")).toThrow(expect.objectContaining({ code: 7, field: "backend" }));
    expect(podDirectoryPrefix("canal")).toBe("/cnikit/canal/pods/");
  });

  it("refuses a node name with '/' and a non-positive resync period", () => {
    const { clock, store } = fixture();
    const base = { store, clock, log: memoryLogger().logger, directory: publishedPodDirectory(PREFIX) };
    expect(() => new PolicyComponent({ ...base, node: "a/b" })).toThrow(expect.objectContaining({ code: 7, field: "node" }));
    expect(() => new PolicyComponent({ ...base, node: "n1", resyncMs: 0 })).toThrow(expect.objectContaining({ code: 7, field: "resyncMs" }));
  });

  it("decodes a published record and names the field of a bad one", () => {
    const good = { node: "n1", key: "c/eth0", namespace: "ns", name: "p", labels: { a: "b" }, ips: ["10.0.0.1"], ports: [{ containerPort: 80 }] };
    expect(decodeDirectoryPod("k", JSON.stringify(good))).toEqual({ ...good, ports: [{ containerPort: 80, protocol: "TCP" }] });
    expect(() => decodeDirectoryPod("k", JSON.stringify({ ...good, ips: "10.0.0.1" }))).toThrow(expect.objectContaining({ field: "k: ips" }));
    expect(() => decodeDirectoryPod("k", JSON.stringify({ ...good, ports: [{ containerPort: 0 }] }))).toThrow(expect.objectContaining({ field: "k: ports[0].containerPort" }));
    expect(() => decodeDirectoryPod("k", JSON.stringify({ ...good, node: "" }))).toThrow(expect.objectContaining({ field: "k: node" }));
  });
});
