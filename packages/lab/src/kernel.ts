/**
 * What the lab needs from the machine: tools (with the Debian package to install) and kernel
 * features (by creating the device in a throw-away namespace, the only test that does not lie:
 * a module may exist on disk and still fail to load). Checked before anything is created, so a
 * lab that cannot work is refused with nothing to clean up.
 */
import { KernelLacksError } from "@cnikit/core";
import type { Encapsulation } from "@cnikit/core";
import { run } from "./system.ts";

/** A tool the lab runs, and the Debian package that provides it. */
export const LAB_TOOLS: readonly { bin: string; pkg: string }[] = [
  { bin: "ip", pkg: "iproute2" },
  { bin: "sysctl", pkg: "procps" },
  { bin: "ping", pkg: "iputils-ping" },
  { bin: "etcd", pkg: "etcd-server" },
];

/** A tool is missing; the message names the package to install. */
export class MissingToolError extends Error {
  readonly bin: string;
  readonly pkg: string;
  constructor(bin: string, pkg: string) {
    super(`[lab] \`${bin}\` not found: install the Debian package ${pkg} (apt-get install -y ${pkg}); scripts/system-packages.txt lists it`);
    this.bin = bin;
    this.pkg = pkg;
  }
}

/** Throws `MissingToolError` for the first missing tool, or an Error when not running as root. */
export function checkTools(find: (bin: string) => boolean): void {
  if (typeof process.getuid === "function" && process.getuid() !== 0) throw new Error("[lab] the lab needs root (network namespaces)");
  for (const t of LAB_TOOLS) if (!find(t.bin)) throw new MissingToolError(t.bin, t.pkg);
}

/** The `ip link add ... type <kind>` arguments that create a device of each encapsulation. */
const DEVICE_ARGS: Partial<Record<Encapsulation, string[]>> = {
  vxlan: ["type", "vxlan", "id", "42", "dstport", "4789"],
  ipip: ["type", "ipip"],
  wireguard: ["type", "wireguard"],
};

const cache = new Map<string, boolean>();

/**
 * Whether the running kernel can create a device for `encap` (`none` always can). Creates it in a
 * temporary namespace named `ckl-kprobe-<pid>` and deletes that namespace again. Cached per process.
 */
export function kernelSupports(encap: Encapsulation): boolean {
  const args = DEVICE_ARGS[encap];
  if (!args) return true;
  const hit = cache.get(encap);
  if (hit !== undefined) return hit;
  const ns = `ckl-kprobe-${process.pid}`;
  run(["ip", "netns", "add", ns]);
  try {
    const ok = run(["ip", "-n", ns, "link", "add", "kprobe0", ...args]).code === 0;
    cache.set(encap, ok);
    return ok;
  } finally {
    run(["ip", "netns", "delete", ns]);
  }
}

/**
 * Throws `KernelLacksError` (CNI code 104, "kernel lacks ipip: ...") for the first encapsulation
 * in `encaps` the kernel cannot create, naming the backend mode that needs it.
 */
export function requireKernel(encaps: readonly Encapsulation[], what: string, supports: (e: Encapsulation) => boolean = kernelSupports): void {
  for (const e of encaps) {
    if (!supports(e)) {
      throw new KernelLacksError(e, `kernel lacks ${e}: ${what} needs ${e} devices, which this kernel cannot create; this mode runs only in the simulator here (pick a mode without ${e})`);
    }
  }
}
