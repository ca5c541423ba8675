// Builds the native cnikit-cni shim (native/cnikit-cni.c) into dist/cnikit-cni (the shared builder:
// scripts/release/native.mjs).
//
// `node scripts/build-shim.mjs` (part of `pnpm build`): for this machine; without a compiler it
// says so and leaves the JavaScript shim (bin/cnikit-cni) as the plugin, which behaves the same but
// starts slower.
//
// `node scripts/build-shim.mjs --release` (scripts/release.sh, before packing): the shim the npm
// package ships — static, stripped, Linux x86-64 only. Elsewhere (arm64, macOS) an installed
// package has no native shim for that machine and `cniPluginPath()` returns the JavaScript shim;
// `buildNativeShim()` compiles one on the node itself.
import { fileURLToPath } from "node:url";
import { buildNative } from "../../../scripts/release/native.mjs";

buildNative({
  label: "cnikit-cni",
  source: fileURLToPath(new URL("../native/cnikit-cni.c", import.meta.url)),
  out: fileURLToPath(new URL("../dist/cnikit-cni", import.meta.url)),
  release: process.argv.includes("--release"),
  missing: "bin/cnikit-cni (JavaScript) is the plugin",
});
