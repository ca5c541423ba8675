/**
 * What the lab needs from the machine: tools (with the Debian package to install) and kernel
 * features (@cnikit/linux's detection, which creates each device in a throw-away namespace: a
 * module may exist on disk and still fail to load). Checked before anything is created, so a lab
 * that cannot work is refused with nothing to clean up.
 */
import type { Encapsulation } from "@cnikit/core";
import { FEATURE_DISPLAY, KernelFeatureError, detectKernelFeatures, type KernelFeature, type KernelFeatures, type MissingFeature } from "@cnikit/linux";

/** A tool the lab runs, and the Debian package that provides it. */
export const LAB_TOOLS: readonly { bin: string; pkg: string }[] = [
  { bin: "ip", pkg: "iproute2" },
  { bin: "sysctl", pkg: "procps" },
  { bin: "ping", pkg: "iputils-ping" },
  { bin: "etcd", pkg: "etcd-server" },
];

/** A tool is missing; the message names the package to install. */
export class MissingLabToolError extends Error {
  readonly bin: string;
  readonly pkg: string;
  constructor(bin: string, pkg: string) {
    super(`[lab] \`${bin}\` not found: install the Debian package ${pkg} (apt-get install -y ${pkg})`);
    this.bin = bin;
    this.pkg = pkg;
  }
}

/** Throws `MissingToolError` for the first missing tool, or an Error when not running as root. */
export function checkTools(find: (bin: string) => boolean): void {
  if (typeof process.getuid === "function" && process.getuid() !== 0) throw new Error("[lab] the lab needs root (network namespaces)");
  for (const t of LAB_TOOLS) if (!find(t.bin)) throw new MissingLabToolError(t.bin, t.pkg);
}

/** The kernel feature an encapsulation needs (`none` needs nothing beyond routing). */
export function encapFeature(encap: Encapsulation): KernelFeature | undefined {
  switch (encap) {
    case "vxlan":
      return "vxlan";
    case "ipip":
      return "ipip";
    case "wireguard":
      return "wireguard";
    case "sleeve":
      return "sleeve";
    default:
      return undefined;
  }
}

/**
 * Throws `KernelFeatureError` (a `KernelLacksError`, CNI code 104) for the encapsulations in
 * `encaps` that `features` lacks: "kernel lacks ipip: calico mode ipip-always needs ipip devices
 * (...the kernel's answer)". Pure.
 */
export function checkKernel(encaps: readonly Encapsulation[], what: string, features: Pick<KernelFeatures, KernelFeature | "reasons">): void {
  const missing: MissingFeature[] = [];
  for (const e of encaps) {
    const f = encapFeature(e);
    if (f === undefined || features[f]) continue;
    const why = features.reasons[f];
    missing.push({
      feature: f,
      object: what,
      message: `kernel lacks ${FEATURE_DISPLAY[f]}: ${what} needs ${e} devices, which this kernel cannot create${why ? ` (${why})` : ""}; this mode runs only in the simulator here`,
    });
  }
  if (missing.length > 0) throw new KernelFeatureError(missing);
}

/** Whether the running kernel can create what `encap` needs (@cnikit/linux's detection, cached). */
export async function kernelSupports(encap: Encapsulation): Promise<boolean> {
  const f = encapFeature(encap);
  return f === undefined ? true : (await detectKernelFeatures())[f];
}

/** `checkKernel` against the running kernel (@cnikit/linux's `detectKernelFeatures`). */
export async function requireKernel(encaps: readonly Encapsulation[], what: string): Promise<void> {
  checkKernel(encaps, what, await detectKernelFeatures());
}
