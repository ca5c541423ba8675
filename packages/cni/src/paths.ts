/**
 * Where the package's executables are, for tools that install or run them (the lab, the
 * conformance suite's `--dataplane linux`, benchmarks), and how to build the native shim.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { compileHelper } from "@cnikit/core";

const here = (rel: string): string => fileURLToPath(new URL(rel, import.meta.url));

/** The JavaScript `cnikit-cni` shim (needs node on PATH). */
export const CNI_PLUGIN_JS = here("../bin/cnikit-cni");

/** The C source of the native `cnikit-cni` shim. */
export const CNI_PLUGIN_SOURCE = here("../native/cnikit-cni.c");

/** The native `cnikit-cni` shim as `pnpm build` (scripts/build-shim.mjs) or `buildNativeShim()` makes it. */
export const CNI_PLUGIN_NATIVE = here("../dist/cnikit-cni");

/** The `cnikitd` executable. */
export const CNIKITD_BIN = here("../bin/cnikitd");

/**
 * The fastest `cnikit-cni` available: the native shim when built, else the JavaScript one. Both
 * speak the same socket protocol and behave alike.
 */
export function cniPluginPath(): string {
  return nativeShimRunsHere() ? CNI_PLUGIN_NATIVE : CNI_PLUGIN_JS;
}

/**
 * Whether `CNI_PLUGIN_NATIVE` exists and is an ELF executable for this machine's architecture: the
 * published package ships a static Linux x86-64 shim (scripts/build-shim.mjs --release), which an
 * arm64 node cannot run, so there the JavaScript shim is the plugin.
 */
function nativeShimRunsHere(): boolean {
  const machines: Record<string, number> = { x64: 0x3e, arm64: 0xb7, ia32: 0x03, arm: 0x28, riscv64: 0xf3, ppc64: 0x15, s390x: 0x16 };
  let head: Buffer;
  try {
    head = readFileSync(CNI_PLUGIN_NATIVE).subarray(0, 20);
  } catch {
    return false;
  }
  return process.platform === "linux" && head.length === 20 && head.readUInt32BE(0) === 0x7f454c46 && head.readUInt16LE(18) === machines[process.arch];
}

/**
 * Compiles the native shim to `out` (default `CNI_PLUGIN_NATIVE`) with `cc` (default $CC, else
 * `cc`) and returns the path. Throws `CniError` (999) naming the compiler and the Debian package
 * (gcc) when compiling fails. Safe to call again (recompiles).
 */
export function buildNativeShim(options: { out?: string; cc?: string } = {}): string {
  return compileHelper({ label: "cnikit-cni", source: CNI_PLUGIN_SOURCE, out: options.out ?? CNI_PLUGIN_NATIVE, ...(options.cc !== undefined ? { cc: options.cc } : {}) });
}
