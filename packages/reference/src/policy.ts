/**
 * NetworkPolicy for the reference backend: the cluster view a node needs to compile its pods'
 * filters with @cnikit/netpol.
 *
 *  - NetworkPolicies and namespaces come from the store at `KUBE_PREFIX` (the contract's layout).
 *  - Pods: every agent publishes its own pods (namespace, name, labels, container ports from the
 *    ADD, address) at `/cnikit/reference/pods/<node>/<containerId>/<ifName>`, attached to the
 *    node's subnet lease, so a crashed node's pods vanish with its subnet.
 *
 * `PolicyView` keeps the three maps up to date from list + watch (re-listed after a watch failure)
 * and compiles one node's FilterPolicies. Pure apart from the store calls; the agent owns timing.
 */
import { KUBE_PREFIX, mirrorPrefix, parseKubeNamespace } from "@cnikit/core";
import type { AgentContext, FilterPolicy, KeyValue, PodPort } from "@cnikit/core";
import { compileFilters, parsePolicyObject } from "@cnikit/netpol";
import type { ClusterNamespace, ClusterPod, ContainerPort, NetworkPolicy } from "@cnikit/netpol";

/** Prefix of the published pods: `/cnikit/reference/pods/<node>/<containerId>/<ifName>`. */
export const POD_PREFIX = "/cnikit/reference/pods/";

/** A published pod (the value at its key). */
export interface PublishedPod {
  node: string;
  /** Attachment key `containerId/ifName`. */
  key: string;
  namespace: string;
  name: string;
  labels: Record<string, string>;
  ips: string[];
  ports: ContainerPort[];
  hostIf: string;
}

/** The store key of a published pod. */
export function publishedPodKey(node: string, key: string): string {
  return `${POD_PREFIX}${node}/${key}`;
}

/** Container ports of an ADD in netpol's shape (protocol defaulted to TCP). */
export function containerPorts(ports: readonly PodPort[] | undefined): ContainerPort[] {
  return (ports ?? []).map((p) => ({ ...(p.name !== undefined ? { name: p.name } : {}), containerPort: p.containerPort, protocol: p.protocol ?? "TCP" }));
}

/** Delay before re-opening a watch that failed. */
const WATCH_RETRY_MS = 1_000;

/** Mirrors the policy-relevant prefixes of the store; see the module comment. */
export class PolicyView {
  private readonly policies = new Map<string, NetworkPolicy>();
  private readonly namespaces = new Map<string, ClusterNamespace>();
  private readonly pods = new Map<string, PublishedPod>();

  constructor(
    private readonly ctx: AgentContext<unknown>,
    private readonly onChange: () => void,
    private readonly warn: (msg: string, err: unknown) => void,
  ) {}

  /** Whether any NetworkPolicy is in force (without one, nothing is filtered). */
  hasPolicies(): boolean {
    return this.policies.size > 0;
  }

  /**
   * Lists the three prefixes and keeps watching them until `signal` aborts (a failed watch is
   * re-listed after 1 s). Resolves after the first listing. Throws what the store throws on that
   * first listing (e.g. `TryAgainError`).
   */
  async start(signal: AbortSignal): Promise<void> {
    await Promise.all([
      this.mirror(KUBE_PREFIX.networkPolicies, signal, (k, kv) => this.onPolicy(k, kv)),
      this.mirror(KUBE_PREFIX.namespaces, signal, (k, kv) => this.onNamespace(k, kv)),
      this.mirror(POD_PREFIX, signal, (k, kv) => this.onPod(k, kv)),
    ]);
  }

  /**
   * The FilterPolicies of `node`'s pods under the policies in force (empty when there is none).
   * `local` replaces the view's pods of `node`; `nodeAddresses` (the node's own addresses) are
   * always allowed to and from its pods.
   * Throws `ConfigError` only for an invalid address in the view.
   */
  compile(input: { node: string; local: PublishedPod[]; nodeAddresses: string[] }): FilterPolicy[] {
    if (this.policies.size === 0) return [];
    const { node, nodeAddresses } = input;
    // This node's pods as the agent knows them now (the store's copy may lag behind a publish).
    const view = [...[...this.pods.values()].filter((p) => p.node !== node), ...input.local];
    const pods: ClusterPod[] = view.map((p) => ({ namespace: p.namespace, name: p.name, labels: p.labels, ips: p.ips, ports: p.ports, node: p.node, key: p.key, hostIf: p.hostIf }));
    const names = new Set([...pods.map((p) => p.namespace), ...[...this.policies.values()].map((p) => p.namespace), ...this.namespaces.keys()]);
    const namespaces = [...names].sort().map((n) => this.namespaces.get(n) ?? { name: n, labels: { "kubernetes.io/metadata.name": n } });
    return compileFilters({ model: { namespaces, pods, policies: [...this.policies.values()] }, node, nodeAddresses });
  }

  private onPolicy(key: string, kv: KeyValue | undefined): void {
    if (!kv) this.policies.delete(key);
    else {
      try {
        this.policies.set(key, parsePolicyObject(JSON.parse(kv.value), key));
      } catch (err) {
        this.warn(`ignoring invalid NetworkPolicy ${key}`, err);
        this.policies.delete(key);
      }
    }
    this.onChange();
  }

  private onNamespace(key: string, kv: KeyValue | undefined): void {
    const name = key.slice(KUBE_PREFIX.namespaces.length);
    if (!kv) this.namespaces.delete(name);
    else {
      try {
        const ns = parseKubeNamespace(key, kv.value);
        this.namespaces.set(name, { name, labels: { "kubernetes.io/metadata.name": name, ...ns.labels } });
      } catch (err) {
        this.warn(`ignoring invalid namespace ${key}`, err);
        this.namespaces.delete(name);
      }
    }
    if (this.policies.size > 0) this.onChange();
  }

  private onPod(key: string, kv: KeyValue | undefined): void {
    if (!kv) this.pods.delete(key);
    else {
      try {
        this.pods.set(key, JSON.parse(kv.value) as PublishedPod);
      } catch {
        this.pods.delete(key);
      }
    }
    if (this.policies.size > 0) this.onChange();
  }

  /** List, then watch from the listing's revision; re-list after a failure. */
  private mirror(prefix: string, signal: AbortSignal, apply: (key: string, kv: KeyValue | undefined) => void): Promise<void> {
    return mirrorPrefix({
      store: this.ctx.store,
      prefix,
      clock: this.ctx.clock,
      signal,
      apply,
      retryMs: WATCH_RETRY_MS,
      onError: (err) => this.warn(`watch of ${prefix} failed; re-listing`, err),
    });
  }
}
