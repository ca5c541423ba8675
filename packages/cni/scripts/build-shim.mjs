// Builds the native cnikit-cni shim (native/cnikit-cni.c) into dist/cnikit-cni with the system C
// compiler ($CC, else cc).
//
// `node scripts/build-shim.mjs` (part of `pnpm build`): for this machine; without a compiler it
// says so and leaves the JavaScript shim (bin/cnikit-cni) as the plugin, which behaves the same but
// starts slower.
//
// `node scripts/build-shim.mjs --release` (scripts/release.sh, before packing): the shim the npm
// package ships — linked statically (no libc needed at run time: any Linux distribution, glibc or
// musl) and stripped, for Linux x86-64 only, the platform the release is built on. It fails, with
// the reason, when there is no compiler, the host is not Linux x86-64, or the output is not a
// static x86-64 ELF executable: a release never silently ships without it. Elsewhere (arm64,
// macOS) an installed package has no native shim for that machine and `cniPluginPath()` returns the
// JavaScript shim; `buildNativeShim()` compiles one on the node itself.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const source = fileURLToPath(new URL("../native/cnikit-cni.c", import.meta.url));
const out = fileURLToPath(new URL("../dist/cnikit-cni", import.meta.url));
const cc = process.env.CC || "cc";
const release = process.argv.includes("--release");
mkdirSync(fileURLToPath(new URL("../dist/", import.meta.url)), { recursive: true });

if (!release) {
  try {
    execFileSync(cc, ["-O2", "-Wall", "-Wextra", "-Werror", "-o", out, source], { stdio: "inherit" });
    console.log(`cnikit-cni: built ${out} with ${cc}`);
  } catch (err) {
    console.warn(`cnikit-cni: no native shim (${cc} failed: ${err.message}); bin/cnikit-cni (JavaScript) is the plugin`);
  }
} else {
  const fail = (why) => {
    console.error(`cnikit-cni --release: ${why}`);
    process.exit(1);
  };
  if (process.platform !== "linux" || process.arch !== "x64") {
    fail(`the published native shim is built for linux x64; this machine is ${process.platform} ${process.arch}`);
  }
  try {
    execFileSync(cc, ["-static", "-s", "-O2", "-Wall", "-Wextra", "-Werror", "-o", out, source], { stdio: "inherit" });
  } catch (err) {
    fail(`${cc} -static failed (${err.message}); install the Debian package gcc (static libc comes with libc6-dev)`);
  }
  const elf = readFileSync(out);
  const machine = elf.readUInt16LE(18);
  if (elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2 || machine !== 0x3e) {
    fail(`${out} is not a 64-bit x86-64 ELF executable (class ${elf[4]}, machine 0x${machine.toString(16)})`);
  }
  // A program header of type PT_INTERP (3) names a dynamic loader: not statically linked.
  const phoff = Number(elf.readBigUInt64LE(32));
  const phentsize = elf.readUInt16LE(54);
  for (let i = 0; i < elf.readUInt16LE(56); i++) {
    if (elf.readUInt32LE(phoff + i * phentsize) === 3) fail(`${out} has a dynamic loader (PT_INTERP): it is not statically linked`);
  }
  console.log(`cnikit-cni: built ${out} (static, stripped, linux x86-64) with ${cc}`);
}
