// Builds one of the C helpers a package ships (cni's plugin shim, weave's TAP helper) with the
// system C compiler ($CC, else cc). Each package's build script calls it (packages/cni/scripts/
// build-shim.mjs, packages/weave/scripts/build-tap.mjs); the release runs them with --release.
//
// For this machine (part of `pnpm build`): without a compiler it says so and builds nothing; the
// package says what it does without the helper (`missing`).
//
// --release (scripts/release.sh, before packing): the binary the npm package ships — linked
// statically (no libc needed at run time: any Linux distribution, glibc or musl) and stripped, for
// Linux x86-64 only, the platform the release is built on. It fails, with the reason, when there is
// no compiler, the host is not Linux x86-64, or the output is not a static x86-64 ELF executable: a
// release never silently ships without it.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { dirname } from "node:path";

const WARNINGS = ["-O2", "-Wall", "-Wextra", "-Werror"];

/**
 * @param {{ label: string, source: string, out: string, release: boolean, missing: string }} o
 *   label: the helper's name in messages; source/out: absolute paths; missing: what the package does
 *   without the helper (printed when the local build has no compiler).
 */
export function buildNative({ label, source, out, release, missing }) {
  const cc = process.env.CC || "cc";
  mkdirSync(dirname(out), { recursive: true });
  if (!release) {
    try {
      execFileSync(cc, [...WARNINGS, "-o", out, source], { stdio: "inherit" });
      console.log(`${label}: built ${out} with ${cc}`);
    } catch (err) {
      console.warn(`${label}: not built (${cc} failed: ${err.message}); ${missing}`);
    }
    return;
  }
  const fail = (why) => {
    console.error(`${label} --release: ${why}`);
    process.exit(1);
  };
  if (process.platform !== "linux" || process.arch !== "x64") {
    fail(`the published ${label} is built for linux x64; this machine is ${process.platform} ${process.arch}`);
  }
  try {
    execFileSync(cc, ["-static", "-s", ...WARNINGS, "-o", out, source], { stdio: "inherit" });
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
  console.log(`${label}: built ${out} (static, stripped, linux x86-64) with ${cc}`);
}
