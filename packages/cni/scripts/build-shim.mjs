// Builds the native cnikit-cni shim (native/cnikit-cni.c) into dist/cnikit-cni with the system C
// compiler ($CC, else cc). Part of `pnpm build`; without a compiler it says so and leaves the
// JavaScript shim (bin/cnikit-cni) as the plugin, which behaves the same but starts slower.
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";

const source = fileURLToPath(new URL("../native/cnikit-cni.c", import.meta.url));
const out = fileURLToPath(new URL("../dist/cnikit-cni", import.meta.url));
const cc = process.env.CC || "cc";
mkdirSync(fileURLToPath(new URL("../dist/", import.meta.url)), { recursive: true });
try {
  execFileSync(cc, ["-O2", "-Wall", "-Wextra", "-Werror", "-o", out, source], { stdio: "inherit" });
  console.log(`cnikit-cni: built ${out} with ${cc}`);
} catch (err) {
  console.warn(`cnikit-cni: no native shim (${cc} failed: ${err.message}); bin/cnikit-cni (JavaScript) is the plugin`);
}
