/**
 * Kernel feature detection: what this kernel can actually do, found by trying it in a throw-away
 * namespace (creating each link kind, loading an nftables filter and a nat table), cached per
 * process. `missingFeatures` / `requireFeatures` compare a NodeDataplane with the answer so that a
 * renderer refuses a dataplane it cannot build before it changes anything, with a message that
 * says which feature is missing and which object needed it.
 */
import { existsSync } from "node:fs";
import { KernelLacksError, type NodeDataplane } from "@cnikit/core";
import { CommandError, runIpBatch, runNft, runProcess } from "./exec.ts";
import { createNetns, deleteNetns, listNetns } from "./netns.ts";

/** Features the renderer probes. */
export const KERNEL_FEATURES = ["bridge", "vxlan", "veth", "dummy", "ipip", "gre", "wireguard", "vrf", "nftables", "nftNat", "brNetfilter", "sleeve"] as const;
export type KernelFeature = (typeof KERNEL_FEATURES)[number];

/** Name of a feature in messages (`kernel lacks br_netfilter: ...`). */
export const FEATURE_DISPLAY: Readonly<Record<KernelFeature, string>> = {
  bridge: "bridge",
  vxlan: "vxlan",
  veth: "veth",
  dummy: "dummy",
  ipip: "ipip",
  gre: "gre",
  wireguard: "wireguard",
  vrf: "vrf",
  nftables: "nftables",
  nftNat: "nftables nat",
  brNetfilter: "br_netfilter",
  sleeve: "sleeve (TAP devices)",
};

/** What the kernel can do: one flag per feature, and for each missing one the probe's error. */
export type KernelFeatures = { readonly [K in KernelFeature]: boolean } & {
  /** Why a feature is missing (the kernel's or tool's message), for every `false` flag. */
  readonly reasons: Readonly<Partial<Record<KernelFeature, string>>>;
};

/**
 * Why a sleeve link cannot be rendered without a userspace datapath (core `UserspaceDatapath`):
 * the kernel has no such device. With one, the link needs only TAP devices (feature `sleeve`).
 */
export const SLEEVE_REASON =
  "sleeve is weave's userspace UDP encapsulation; the kernel has no device for it and this renderer was given no userspace datapath for it (cnikitd passes the backend's), so here it runs only in the simulator";

/** Link kinds the kernel has no device for: rendered only through a userspace datapath. */
export const USERSPACE_ONLY_KINDS: readonly string[] = ["sleeve"];

/**
 * Code 104 (via core's `KernelLacksError`): the running kernel lacks a feature the dataplane
 * needs. Thrown before anything is changed. `feature` is the first missing feature; `missing`
 * lists all of them with the object that needed each.
 */
export class KernelFeatureError extends KernelLacksError {
  readonly missing: readonly MissingFeature[];
  constructor(missing: readonly MissingFeature[]) {
    const first = missing[0];
    const text = missing.map((m) => m.message).join("; ");
    super(first?.feature ?? "unknown", text || "kernel lacks a feature");
    this.missing = missing;
  }
}

/** One feature a dataplane needs that the kernel lacks. */
export interface MissingFeature {
  feature: KernelFeature;
  /** The dataplane object that needs it, e.g. `link tunl0` or `pod abc/eth0`. */
  object: string;
  /** `kernel lacks ipip: cannot create link tunl0 of kind ipip (Error: Unknown device type.)` */
  message: string;
}

let cached: Promise<KernelFeatures> | undefined;

/**
 * Probes the kernel once per process (later calls return the cached answer unless `refresh`):
 * removes probe namespaces of dead processes, creates a throw-away namespace `ckfeat-<pid>-<random>`, tries one link of each kind in it with
 * one `ip -force -batch`, loads a filter table with a conntrack rule and a nat table with a
 * masquerade rule with `nft -f`, checks br_netfilter's sysctls, and deletes the namespace again
 * (also on failure). `sleeve` is whether the kernel makes TAP devices (`ip tuntap`), all a userspace
 * sleeve needs of it.
 * @throws MissingToolError when iproute2 (or nsenter) is not installed; CommandError when the
 *   probe namespace cannot be created.
 */
export function detectKernelFeatures(options: { refresh?: boolean } = {}): Promise<KernelFeatures> {
  if (!cached || options.refresh) {
    const p = probe();
    cached = p;
    p.catch(() => {
      if (cached === p) cached = undefined;
    });
  }
  return cached;
}

const LINK_PROBES: readonly { feature: KernelFeature; line: string }[] = [
  { feature: "bridge", line: "link add ckf-br type bridge" },
  { feature: "vxlan", line: "link add ckf-vx type vxlan id 42 dstport 4789 nolearning" },
  { feature: "veth", line: "link add ckf-ve type veth peer name ckf-ve-p" },
  { feature: "dummy", line: "link add ckf-du type dummy" },
  { feature: "ipip", line: "link add ckf-ipip type ipip" },
  { feature: "gre", line: "link add ckf-gre type gre" },
  { feature: "wireguard", line: "link add ckf-wg type wireguard" },
  { feature: "vrf", line: "link add ckf-vrf type vrf table 4242" },
  { feature: "sleeve", line: "tuntap add ckf-tap mode tap" },
];

/** Removes probe namespaces left by processes that died mid-probe. */
async function removeStaleProbes(): Promise<void> {
  for (const name of await listNetns()) {
    const m = /^ckfeat-(\d+)-/.exec(name);
    if (!m || Number(m[1]) === process.pid) continue;
    try {
      process.kill(Number(m[1]), 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ESRCH") await deleteNetns(name);
    }
  }
}

async function probe(): Promise<KernelFeatures> {
  await removeStaleProbes();
  const ns = `ckfeat-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const flags: Record<string, boolean> = {};
  const reasons: Partial<Record<KernelFeature, string>> = {};
  await createNetns(ns, { loopbackUp: false });
  try {
    const r = await runIpBatch(
      ns,
      LINK_PROBES.map((p) => p.line),
      { force: true },
    );
    const failed = new Map(r.failures.map((f) => [f.line, f.message]));
    LINK_PROBES.forEach((p, i) => {
      const why = failed.get(i + 1);
      flags[p.feature] = why === undefined;
      if (why !== undefined) reasons[p.feature] = why || "the kernel refused the link";
    });
    try {
      await runNft(
        ns,
        'table inet ckf {\n\tchain f {\n\t\ttype filter hook forward priority 0; policy accept;\n\t\tct state established,related accept\n\t\tiifname vmap { "x" : jump g }\n\t}\n\tchain g {\n\t\tmeta l4proto tcp th dport { 80, 443-445 } return\n\t}\n}\n',
      );
      flags["nftables"] = true;
    } catch (err) {
      flags["nftables"] = false;
      reasons.nftables = errText(err);
    }
    try {
      await runNft(
        ns,
        "table inet ckfn {\n\tchain p {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t\tip saddr 10.0.0.0/8 ip daddr != { 10.0.0.0/8 } masquerade fully-random\n\t}\n}\n",
      );
      flags["nftNat"] = true;
    } catch (err) {
      flags["nftNat"] = false;
      reasons.nftNat = errText(err);
    }
    flags["brNetfilter"] = await brNetfilter();
    if (!flags["brNetfilter"]) reasons.brNetfilter = "no /proc/sys/net/bridge/bridge-nf-call-iptables (module br_netfilter is not loaded and modprobe br_netfilter failed)";
  } finally {
    await deleteNetns(ns);
  }
  if (!flags["sleeve"]) reasons.sleeve = `no TAP devices for a userspace sleeve: ${reasons.sleeve ?? "the kernel refused"}`;
  return { ...(flags as Record<KernelFeature, boolean>), reasons };
}

async function brNetfilter(): Promise<boolean> {
  const path = "/proc/sys/net/bridge/bridge-nf-call-iptables";
  if (existsSync(path)) return true;
  try {
    await runProcess(["modprobe", "br_netfilter"]);
  } catch {
    return false;
  }
  return existsSync(path);
}

function errText(err: unknown): string {
  if (err instanceof CommandError) return err.stderr.trim().split("\n")[0] ?? err.message;
  return err instanceof Error ? err.message : String(err);
}

/** The kernel features a dataplane needs, each with the object that needs it. */
export function neededFeatures(dp: NodeDataplane): { feature: KernelFeature; object: string; action: string }[] {
  const out: { feature: KernelFeature; object: string; action: string }[] = [];
  for (const l of dp.links) {
    const kind = l.kind as string;
    if ((KERNEL_FEATURES as readonly string[]).includes(kind)) out.push({ feature: kind as KernelFeature, object: `link ${l.name}`, action: `cannot create link ${l.name} of kind ${kind}` });
  }
  const pod = dp.pods[0];
  if (pod) out.push({ feature: "veth", object: `pod ${pod.key}`, action: `cannot create the veth ${pod.hostIf} of pod ${pod.key}` });
  if (dp.filters.length > 0) {
    out.push({ feature: "nftables", object: `filters of pod ${dp.filters[0]!.pod}`, action: `cannot load the filter table for pod ${dp.filters[0]!.pod}` });
  }
  const nat = dp.nat[0];
  if (nat) {
    out.push({ feature: "nftables", object: `nat rule ${nat.id}`, action: `cannot load the nat table for rule ${nat.id}` });
    out.push({ feature: "nftNat", object: `nat rule ${nat.id}`, action: `cannot ${nat.kind} for rule ${nat.id}` });
  }
  if (dp.sysctls.bridgeNfCall === true) out.push({ feature: "brNetfilter", object: "sysctls.bridgeNfCall", action: "cannot send bridged traffic through the filter rules (sysctls.bridgeNfCall)" });
  const filtered = new Set(dp.filters.map((f) => f.pod));
  const bridged = dp.pods.find((p) => p.bridge !== undefined && filtered.has(p.key));
  if (bridged) out.push({ feature: "brNetfilter", object: `pod ${bridged.key}`, action: `cannot filter traffic of pod ${bridged.key} on bridge ${bridged.bridge}` });
  return out;
}

/**
 * The features `dp` needs that `features` lacks (empty = renderable). Pure.
 * Message form: `kernel lacks ipip: cannot create link tunl0 of kind ipip (Error: Unknown device type.)`.
 * A link of a kind the kernel has no device for (`USERSPACE_ONLY_KINDS`) is missing unless
 * `userspaceKinds` (the kinds of the renderer's userspace datapath) has it.
 */
export function missingFeatures(dp: NodeDataplane, features: KernelFeatures, userspaceKinds: ReadonlySet<string> = new Set()): MissingFeature[] {
  const seen = new Set<string>();
  const out: MissingFeature[] = [];
  for (const l of dp.links) {
    const kind = l.kind as string;
    if (!USERSPACE_ONLY_KINDS.includes(kind) || userspaceKinds.has(kind)) continue;
    seen.add(`sleeve link ${l.name}`);
    out.push({ feature: "sleeve", object: `link ${l.name}`, message: `kernel lacks sleeve: cannot create link ${l.name} of kind ${kind} (${SLEEVE_REASON})` });
  }
  for (const need of neededFeatures(dp)) {
    if (features[need.feature]) continue;
    const key = `${need.feature} ${need.object}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const why = features.reasons[need.feature];
    out.push({ feature: need.feature, object: need.object, message: `kernel lacks ${FEATURE_DISPLAY[need.feature]}: ${need.action}${why ? ` (${why})` : ""}` });
  }
  return out;
}

/**
 * Throws `KernelFeatureError` when the kernel lacks something `dp` needs (links of a kind it
 * cannot create, veth for pods, nftables for filters and NAT, br_netfilter for bridged filtering,
 * and weave's sleeve unless `userspaceKinds` has it). `features` defaults to
 * `detectKernelFeatures()`. Changes nothing.
 */
export async function requireFeatures(dp: NodeDataplane, features?: KernelFeatures, userspaceKinds?: ReadonlySet<string>): Promise<void> {
  const f = features ?? (await detectKernelFeatures());
  const missing = missingFeatures(dp, f, userspaceKinds);
  if (missing.length > 0) throw new KernelFeatureError(missing);
}
