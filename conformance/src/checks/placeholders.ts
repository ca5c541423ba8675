/**
 * Section I, which the simulator run reports but does not run (real dataplane: run by
 * `--dataplane linux`, whose driver lives in @cnikit/lab). Its checks are "not claimed" when the
 * backend's capabilities say so and "not run" otherwise — never "passed". (Section G runs in the
 * simulator: checks/encryption.ts.)
 */
import { SOURCES, notRun } from "../check.ts";
import type { CheckDefinition } from "../check.ts";

/** Section I runs only on the kernel: `cnikit-conformance --dataplane linux` (@cnikit/lab's driver). */
const LINUX_ONLY = "use --dataplane linux (this run used the simulator)";

export const placeholderChecks: CheckDefinition[] = [
  {
    id: "linux.same-checks",
    section: "I",
    rule: "The same scenario in the simulator and on the kernel (real namespaces, cnikitd, the plugin executable) gives the same reachability table, cell by cell.",
    source: SOURCES.linux,
    required: true,
    gate: () => ({ status: "not run", reason: LINUX_ONLY }),
    run: async () => notRun(LINUX_ONLY),
  },
  {
    id: "linux.policy-nftables",
    section: "I",
    rule: "NetworkPolicy is enforced by nftables on the kernel exactly as the simulator and @cnikit/netpol's evaluator say.",
    source: `${SOURCES.policy}; ${SOURCES.linux}`,
    required: true,
    gate: (ctx) => (ctx.backend.capabilities.networkPolicy ? { status: "not run", reason: LINUX_ONLY } : { status: "not claimed", reason: "capabilities.networkPolicy is false" }),
    run: async () => notRun(LINUX_ONLY),
  },
];
