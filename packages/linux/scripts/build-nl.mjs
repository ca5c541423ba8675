// Builds the renderer's netlink helper (native/cnikit-nl.c) into dist/cnikit-nl (the shared builder:
// scripts/release/native.mjs).
//
// `node scripts/build-nl.mjs` (part of `pnpm build`): for this machine; without a compiler it says so
// and the renderer sets up pod sides with one `ip -batch` process per new pod instead (same result,
// slower).
//
// `node scripts/build-nl.mjs --release`: the helper the npm package ships — static, stripped, Linux
// x86-64 only.
import { fileURLToPath } from "node:url";
import { buildNative } from "../../../scripts/release/native.mjs";

buildNative({
  label: "cnikit-nl",
  source: fileURLToPath(new URL("../native/cnikit-nl.c", import.meta.url)),
  out: fileURLToPath(new URL("../dist/cnikit-nl", import.meta.url)),
  release: process.argv.includes("--release"),
  missing: "the renderer runs one `ip -batch` per new pod's namespace instead",
});
