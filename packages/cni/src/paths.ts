/**
 * Where the package's executables are, for tools that install or run them (the lab, the
 * conformance suite's `--dataplane linux`, benchmarks).
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const here = (rel: string): string => fileURLToPath(new URL(rel, import.meta.url));

/** The JavaScript `cnikit-cni` shim (needs node on PATH). */
export const CNI_PLUGIN_JS = here("../bin/cnikit-cni");

/** The C `cnikit-cni` shim as built by `pnpm build` (scripts/build-shim.mjs) when a C compiler was found. */
export const CNI_PLUGIN_NATIVE = here("../dist/cnikit-cni");

/** The `cnikitd` executable. */
export const CNIKITD_BIN = here("../bin/cnikitd");

/**
 * The fastest `cnikit-cni` available: the native shim when built, else the JavaScript one. Both
 * speak the same socket protocol and behave alike.
 */
export function cniPluginPath(): string {
  return existsSync(CNI_PLUGIN_NATIVE) ? CNI_PLUGIN_NATIVE : CNI_PLUGIN_JS;
}
