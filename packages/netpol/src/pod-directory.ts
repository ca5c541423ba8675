/**
 * A pod directory: how a node learns about the pods of other nodes, which NetworkPolicy peers
 * select by label and named ports resolve against. Two strategies:
 *
 *  - `publishedPodDirectory`: the policy component publishes each local pod (namespace, name,
 *    labels, container ports, addresses) at `<prefix><node>/<containerId>/<ifName>`, attached to a
 *    lease the agent passes, so a crashed node's pods vanish with its lease. The prefix is the
 *    backend's own (`podDirectoryPrefix(backend)`), so two backends sharing a store never collide.
 *  - `externalPodDirectory`: the backend keeps records of its own (Calico's workload endpoints)
 *    and supplies their prefix and a decoder; publishing stays the backend's business.
 */
import { ConfigError, KUBE_PREFIX, podKey } from "@cnikit/core";
import type { PodPort, PodRef } from "@cnikit/core";
import type { ClusterPod, ContainerPort, PolicyProtocol } from "./types.ts";
import { portNumberProblem, protocolProblem } from "./validate.ts";

const COMPONENT = "netpol";

/** A pod as a directory holds it: a `ClusterPod` whose node and attachment key are known. */
export type DirectoryPod = ClusterPod & { node: string; key: string };

/** The component publishes local pods under `prefix` (see the module comment). */
export interface PublishedPodDirectory {
  readonly kind: "published";
  /** Ends with `/`; keys are `<prefix><node>/<containerId>/<ifName>`. */
  readonly prefix: string;
}

/** The backend publishes its own records under `prefix`; the component only reads them. */
export interface ExternalPodDirectory {
  readonly kind: "external";
  /** Ends with `/`; every key under it is one pod record. */
  readonly prefix: string;
  /**
   * One record as a pod (undefined: not a pod, skip it silently). Throws for a record that should
   * be a pod but is unreadable (the component warns with the key and ignores it).
   */
  decode(key: string, value: string): DirectoryPod | undefined;
}

export type PodDirectory = PublishedPodDirectory | ExternalPodDirectory;

/** The prefix a backend publishes its pods under: `/cnikit/<backend>/pods/`. Throws `ConfigError` for a bad name. */
export function podDirectoryPrefix(backend: string): string {
  if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(backend)) {
    throw new ConfigError({ component: COMPONENT, field: "backend", rule: "must be a lowercase DNS label (a-z, 0-9, '-')", value: backend });
  }
  return `/cnikit/${backend}/pods/`;
}

function checkPrefix(prefix: string): string {
  if (!prefix.startsWith("/") || !prefix.endsWith("/") || prefix.length < 3) {
    throw new ConfigError({ component: COMPONENT, field: "podDirectory.prefix", rule: "must start and end with '/' and name a folder (e.g. /cnikit/<backend>/pods/)", value: prefix });
  }
  for (const kube of Object.values(KUBE_PREFIX)) {
    if (kube.startsWith(prefix) || prefix.startsWith(kube)) {
      throw new ConfigError({ component: COMPONENT, field: "podDirectory.prefix", rule: `must not overlap the Kubernetes objects at ${kube}`, value: prefix });
    }
  }
  return prefix;
}

/** The default strategy: the component publishes local pods under `prefix`. Throws `ConfigError` for a bad prefix. */
export function publishedPodDirectory(prefix: string): PublishedPodDirectory {
  return { kind: "published", prefix: checkPrefix(prefix) };
}

/** A backend's own records as the directory. Throws `ConfigError` for a bad prefix. */
export function externalPodDirectory(options: { prefix: string; decode: (key: string, value: string) => DirectoryPod | undefined }): ExternalPodDirectory {
  return { kind: "external", prefix: checkPrefix(options.prefix), decode: options.decode };
}

/** A local pod as the agent hands it to the component (its ADD's fields plus what it assigned). */
export interface LocalPolicyPod extends PodRef {
  /** Default `default`. */
  namespace?: string;
  /** Default the container id. */
  podName?: string;
  labels?: Record<string, string>;
  /** The ADD's container ports (protocol defaults to TCP). */
  ports?: readonly PodPort[];
  /** The pod's addresses, canonical text. */
  ips: readonly string[];
  /** The host-side interface of the pod (nftables dispatch). */
  hostIf: string;
}

/** Container ports of an ADD in netpol's shape (protocol defaulted to TCP). Pure. */
export function containerPortsOf(ports: readonly PodPort[] | undefined): ContainerPort[] {
  return (ports ?? []).map((p) => ({ ...(p.name !== undefined ? { name: p.name } : {}), containerPort: p.containerPort, protocol: p.protocol ?? "TCP" }));
}

/** A local pod as the directory (and `compileNodeFilters`) holds it, on `node`. Pure. */
export function directoryPodOf(node: string, pod: LocalPolicyPod): DirectoryPod {
  return {
    node,
    key: podKey(pod),
    namespace: pod.namespace ?? "default",
    name: pod.podName ?? pod.containerId,
    labels: { ...(pod.labels ?? {}) },
    ips: [...pod.ips],
    ports: containerPortsOf(pod.ports),
    hostIf: pod.hostIf,
  };
}

function fail(key: string, field: string, rule: string, value: unknown): never {
  throw new ConfigError({ component: COMPONENT, field: `${key}: ${field}`, rule, value });
}

function str(key: string, o: Record<string, unknown>, field: string): string {
  const v = o[field];
  if (typeof v !== "string" || v === "") fail(key, field, "must be a non-empty string", v);
  return v;
}

/**
 * Reads a published pod record (the JSON of a `DirectoryPod`; `ports` may be absent). Pure.
 * Throws `ConfigError` naming the key and field when the value is not such a record.
 */
export function decodeDirectoryPod(key: string, value: string): DirectoryPod {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (err) {
    throw new ConfigError({ component: COMPONENT, field: key, rule: "must be a JSON object", value, cause: err });
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) fail(key, "(value)", "must be a JSON object", parsed);
  const o = parsed as Record<string, unknown>;
  const labels = o.labels ?? {};
  if (labels === null || typeof labels !== "object" || Array.isArray(labels) || Object.values(labels).some((v) => typeof v !== "string")) {
    fail(key, "labels", "must be an object of string values", labels);
  }
  const ips = o.ips;
  if (!Array.isArray(ips) || ips.some((ip) => typeof ip !== "string")) fail(key, "ips", "must be an array of address strings", ips);
  const rawPorts = o.ports ?? [];
  if (!Array.isArray(rawPorts)) fail(key, "ports", "must be an array", rawPorts);
  const ports = rawPorts.map((p: unknown, i): ContainerPort => {
    const q = (p ?? {}) as Record<string, unknown>;
    const n = q.containerPort;
    const np = portNumberProblem(n);
    if (np !== undefined) fail(key, `ports[${i}].containerPort`, np, n);
    const protocol = q.protocol ?? "TCP";
    const pp = protocolProblem(protocol);
    if (pp !== undefined) fail(key, `ports[${i}].protocol`, pp, protocol);
    if (q.name !== undefined && typeof q.name !== "string") fail(key, `ports[${i}].name`, "must be a string", q.name);
    return { ...(q.name !== undefined ? { name: q.name as string } : {}), containerPort: n as number, protocol: protocol as PolicyProtocol };
  });
  const pod: DirectoryPod = {
    node: str(key, o, "node"),
    key: str(key, o, "key"),
    namespace: str(key, o, "namespace"),
    name: str(key, o, "name"),
    labels: { ...(labels as Record<string, string>) },
    ips: [...(ips as string[])],
    ports,
  };
  if (o.hostIf !== undefined) pod.hostIf = str(key, o, "hostIf");
  return pod;
}

/** The store key of a published pod: `<prefix><node>/<attachment key>` (key = `containerId/ifName`). Pure. */
export function publishedPodKey(prefix: string, node: string, key: string): string {
  return `${prefix}${node}/${key}`;
}
