/**
 * cnikit-bench's `--dataplane linux` branch: each target on the kernel (runLinuxBench), the BIRD
 * mesh beside each calico target without encapsulation when asked (`--compare-bird`), and the
 * Markdown that prints calico and BIRD side by side with their ratio.
 */
import type { Backend } from "@cnikit/core";
import { cell } from "./markdown.ts";
import type { BenchProgress, BenchReport } from "./run.ts";
import { LINUX_MAX_NODES, linuxPreflight, runLinuxBench } from "./linux.ts";
import type { ScenarioId } from "./scenarios.ts";

/** One thing to run on the kernel (cli.ts's target, with the module cnikitd loads a non-built-in backend from). */
export interface LinuxCliTarget {
  backend: Backend<unknown>;
  config: unknown;
  label: string;
  /** For a backend module: its spec (path or package, `#export`) and the directory it resolves from. */
  module?: { spec: string; cwd: string };
}

/**
 * Runs every target on the kernel (and BIRD beside the calico ones when `compareBird`). `problem`
 * is called for what the caller reports as a usage error (exit 2): not root, a tool missing, N
 * above `LINUX_MAX_NODES`. A bird-mesh comparison a config cannot have (an encapsulation) is
 * skipped with a note.
 */
export async function runLinuxTargets(init: {
  targets: readonly LinuxCliTarget[];
  nodes: number[];
  runs: number;
  scenarios?: ScenarioId[];
  compareBird: boolean;
  usage: (message: string) => Error;
  note: (line: string) => void;
  onRun?: (p: BenchProgress, label: string) => void;
}): Promise<BenchReport[]> {
  const over = init.nodes.filter((n) => n > LINUX_MAX_NODES);
  if (over.length > 0) throw init.usage(`--nodes: --dataplane linux builds labs of at most ${LINUX_MAX_NODES} nodes here, got ${over.join(", ")}`);
  if (init.compareBird && !init.targets.some((t) => t.backend.name === "calico")) throw init.usage("--compare-bird compares calico with a BIRD full mesh: use it with --backend calico");
  try {
    linuxPreflight(init.compareBird ? "bird-mesh" : "agents");
  } catch (err) {
    throw init.usage(`--dataplane linux: ${err instanceof Error ? err.message : String(err)}`);
  }
  const reports: BenchReport[] = [];
  for (const t of init.targets) {
    const common = {
      config: t.config,
      configLabel: t.label,
      nodes: init.nodes,
      runs: init.runs,
      ...(init.scenarios ? { scenarios: init.scenarios } : {}),
    };
    const backendModule = t.module ? moduleOf(t.module) : undefined;
    try {
      reports.push(
        await runLinuxBench({
          backend: t.backend,
          ...(backendModule ? { backendModule } : {}),
          ...common,
          ...(init.onRun ? { onRun: (p: BenchProgress) => init.onRun!(p, `${t.backend.name}/${t.label}`) } : {}),
        }),
      );
    } catch (err) {
      // A config the backend (or the lab) refuses, ConfigError code 7, is the user's to fix.
      if ((err as { code?: unknown } | null)?.code === 7) throw init.usage(`${t.backend.name}/${t.label}: ${err instanceof Error ? err.message : String(err)}`);
      throw err;
    }
    if (init.compareBird && t.backend.name === "calico") {
      try {
        reports.push(await runLinuxBench({ backend: t.backend, target: "bird-mesh", ...common, ...(init.onRun ? { onRun: (p: BenchProgress) => init.onRun!(p, `bird-mesh/${t.label}`) } : {}) }));
      } catch (err) {
        if ((err as { code?: unknown; field?: unknown } | null)?.code !== 7) throw err;
        init.note(`bird-mesh beside calico/${t.label} skipped: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }
  return reports;
}

function moduleOf(m: { spec: string; cwd: string }): { module: string; from: string; export?: string } {
  const hash = m.spec.lastIndexOf("#");
  return hash > 0 ? { module: m.spec.slice(0, hash), from: m.cwd, export: m.spec.slice(hash + 1) } : { module: m.spec, from: m.cwd };
}

/**
 * calico and the BIRD mesh side by side: per config, scenario and N, each one's cell and the
 * ratio of their median times to a converged FIB (calico ÷ BIRD). Empty when no pair ran.
 */
export function renderBirdComparison(reports: readonly BenchReport[]): string {
  const out: string[] = [];
  for (const bird of reports.filter((r) => r.dataplane === "linux" && r.backend === "bird-mesh")) {
    const calico = reports.find((r) => r.dataplane === "linux" && r.backend === "calico" && r.configLabel === bird.configLabel);
    if (!calico) continue;
    if (out.length === 0) {
      out.push(
        "## calico vs BIRD on the kernel",
        "",
        "Both on the same lab underlay: calico's cnikitd per node (its own BGP full mesh, routes rendered by cnikit's linux renderer), and BIRD 2 (Debian bird2) per node in a full iBGP mesh configured like Calico's node-to-node mesh (AS 64512, one /26 block per node as a blackhole route, exported as an aggregate; graceful restart, connect delay 2 s, kernel scan 2 s — see packages/bench/src/linux-bird.ts). Ratio: calico's median ms to a converged FIB ÷ BIRD's.",
        "",
      );
    }
    out.push(`### ${calico.configLabel}`, "", "| scenario | N | calico | BIRD mesh | calico ÷ BIRD |", "|---|---:|---|---|---:|");
    for (const b of bird.results) {
      const c = calico.results.find((x) => x.scenario === b.scenario && x.nodes === b.nodes);
      if (!c) continue;
      const ratio = c.kernelMs && b.kernelMs && b.kernelMs.median > 0 ? `${(c.kernelMs.median / b.kernelMs.median).toFixed(2)}×` : "—";
      out.push(`| ${b.scenario} | ${b.nodes} | ${cell(c).replace(/\|/g, "\\|")} | ${cell(b).replace(/\|/g, "\\|")} | ${ratio} |`);
    }
    out.push("");
  }
  return out.join("\n");
}
