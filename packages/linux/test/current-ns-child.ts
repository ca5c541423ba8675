/**
 * Run by renderer.integration.test.ts under `nsenter --net=<scratch netns>`: renders a calico-style
 * dataplane into the current namespace (no `netns` option: sysctls are written straight to
 * /proc/sys), applies it twice, and prints both reports as JSON lines.
 */
import { LinuxRenderer } from "../src/index.ts";
import { calicoDataplane } from "./dataplanes.ts";

const [podNetns, mode] = process.argv.slice(2);
const renderer = new LinuxRenderer({ owner: "cur" });
if (mode === "teardown") {
  await renderer.teardown();
} else {
  const dp = calicoDataplane({ mode: "none", self: 1, nodes: 2, pods: [{ id: 1, netns: podNetns! }] });
  for (let i = 0; i < 2; i++) process.stdout.write(`${JSON.stringify(await renderer.apply(dp))}\n`);
}
