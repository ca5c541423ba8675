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
import { mirrorPrefix } from "@cnikit/core";
import type { AgentContext, FilterPolicy, KeyValue, PodPort } from "@cnikit/core";
import { KubePolicyView } from "@cnikit/netpol";
import type { ClusterPod, ContainerPort } from "@cnikit/netpol";

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
  private readonly kube: KubePolicyView;
  private readonly pods = new Map<string, PublishedPod>();

  constructor(
    private readonly ctx: AgentContext<unknown>,
    private readonly onChange: () => void,
    private readonly warn: (msg: string, err: unknown) => void,
  ) {
    this.kube = new KubePolicyView(warn);
  }

  /** Whether any NetworkPolicy is in force (without one, nothing is filtered). */
  hasPolicies(): boolean {
    return this.kube.hasPolicies();
  }

  /**
   * Lists the policy, namespace and pod prefixes and keeps watching them until `signal` aborts (a
   * failed watch is re-listed after 1 s). Resolves after the first listing. Throws what the store
   * throws on that first listing (e.g. `TryAgainError`).
   */
  async start(signal: AbortSignal): Promise<void> {
    await Promise.all([
      this.kube.start({ store: this.ctx.store, clock: this.ctx.clock, signal, retryMs: WATCH_RETRY_MS, onChange: this.onChange }),
      mirrorPrefix({
        store: this.ctx.store,
        prefix: POD_PREFIX,
        clock: this.ctx.clock,
        signal,
        apply: (k, kv) => this.onPod(k, kv),
        retryMs: WATCH_RETRY_MS,
        onError: (err) => this.warn(`watch of ${POD_PREFIX} failed; re-listing`, err),
      }),
    ]);
  }

  /**
   * The FilterPolicies of `node`'s pods under the policies in force (empty when there is none).
   * `local` replaces the view's pods of `node`; `nodeAddresses` (the node's own addresses) are
   * always allowed to and from its pods.
   * Throws `ConfigError` only for an invalid address in the view.
   */
  compile(input: { node: string; local: PublishedPod[]; nodeAddresses: string[] }): FilterPolicy[] {
    if (!this.kube.hasPolicies()) return [];
    const { node, nodeAddresses } = input;
    // This node's pods as the agent knows them now (the store's copy may lag behind a publish).
    const view = [...[...this.pods.values()].filter((p) => p.node !== node), ...input.local];
    const pods: ClusterPod[] = view.map((p) => ({ namespace: p.namespace, name: p.name, labels: p.labels, ips: p.ips, ports: p.ports, node: p.node, key: p.key, hostIf: p.hostIf }));
    return this.kube.compile({ node, pods, nodeAddresses });
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
    if (this.kube.hasPolicies()) this.onChange();
  }
}
