// Builds the sleeve's TAP helper (native/weave-tap.c) into dist/weave-tap (the shared builder:
// scripts/release/native.mjs). Part of `pnpm build`. Without a compiler it says so and builds
// nothing: the sleeve on a real kernel needs the helper (Node cannot open a TAP device), so the
// relay's start then fails naming the missing file (`buildWeaveTap()` compiles it on the node from
// the shipped native/weave-tap.c); the simulator and fast datapath do not need it.
//
// `--release` (scripts/release.sh, before packing): the helper the npm package ships — static,
// stripped, Linux x86-64 only (built on the packing machine, it must not depend on its libc).
import { fileURLToPath } from "node:url";
import { buildNative } from "../../../scripts/release/native.mjs";

buildNative({
  label: "weave-tap",
  source: fileURLToPath(new URL("../native/weave-tap.c", import.meta.url)),
  out: fileURLToPath(new URL("../dist/weave-tap", import.meta.url)),
  release: process.argv.includes("--release"),
  missing: "install the Debian package gcc for the sleeve on a real kernel",
});
