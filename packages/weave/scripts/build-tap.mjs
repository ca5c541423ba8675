// Builds the sleeve's TAP helper (native/weave-tap.c) into dist/weave-tap with the system C
// compiler ($CC, else cc). Part of `pnpm build`. Without a compiler it says so and builds nothing:
// the sleeve on a real kernel needs the helper (Node cannot open a TAP device), so the relay's
// start then fails naming the missing file; the simulator and fast datapath do not need it.
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";

const source = fileURLToPath(new URL("../native/weave-tap.c", import.meta.url));
const out = fileURLToPath(new URL("../dist/weave-tap", import.meta.url));
const cc = process.env.CC || "cc";
mkdirSync(fileURLToPath(new URL("../dist/", import.meta.url)), { recursive: true });
try {
  execFileSync(cc, ["-O2", "-Wall", "-Wextra", "-Werror", "-o", out, source], { stdio: "inherit" });
  console.log(`weave-tap: built ${out} with ${cc}`);
} catch (err) {
  console.warn(`weave-tap: not built (${cc} failed: ${err.message}); install the Debian package gcc for the sleeve on a real kernel`);
}
