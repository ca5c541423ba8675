// Weave sleeve throughput on the real kernel: MB/s of one TCP stream between two pods on two node
// namespaces (packages/weave/test/sleeve-lab.ts: veth underlay with MTU 1500, bridge `weave` per
// node), through three ports on the same bridges side by side:
//   fastdp           kernel vxlan (UDP 6784), the yardstick
//   sleeve           SleeveRelay + TAP helper (UDP 6783), plaintext
//   sleeve-encrypted the same, every packet sealed (ChaCha20-Poly1305, per-direction keys)
// The sender and receiver are small Node programs (packages/weave/test/sleeve-tcp.mjs); a transfer
// counts from connect until the receiver has counted every byte. Median of RUNS transfers of MB
// megabytes after a warm-up, with the relays' drop counters. Needs root, iproute2, gcc.
// Run alone: pnpm exec tsx --conditions=source scripts/bench/weave-sleeve.ts [MB]
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildWeaveTap } from "../../packages/weave/src/sleeve/tap.ts";
import { SleeveLab, type SleeveLabOptions } from "../../packages/weave/test/sleeve-lab.ts";
import { runIfMain, type Figure } from "./figures.ts";

const RUNS = 3;
const PORT = 5001;

interface Row {
  mode: string;
  mtu: number;
  mbps: number[];
  drops: string;
}

async function measure(label: string, options: SleeveLabOptions, mb: number): Promise<Row> {
  const lab = await SleeveLab.start(options);
  try {
    if (!(await lab.pingUntil(0, 1))) throw new Error(`${label}: the pods do not reach each other`);
    await lab.serve(1, PORT);
    await lab.blast(0, 1, PORT, 4 * 1024 * 1024); // warm-up: ARP, MAC learning, TCP window
    const mbps: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const r = await lab.blast(0, 1, PORT, mb * 1024 * 1024, 600_000);
      if (r.bytes !== mb * 1024 * 1024) throw new Error(`${label}: the receiver counted ${r.bytes} of ${mb * 1024 * 1024} bytes`);
      mbps.push(r.bytes / 1024 / 1024 / (r.ms / 1000));
    }
    let drops = "-";
    if (options.mode === "sleeve") {
      const all = [await lab.stats(0), await lab.stats(1)].flatMap((s) =>
        Object.entries(s.drops)
          .filter(([, n]) => n > 0)
          .map(([why, n]) => `${why} ${n}`),
      );
      drops = all.length === 0 ? "none" : all.join(", ");
    }
    return { mode: label, mtu: lab.mtu, mbps, drops };
  } finally {
    await lab.stop();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export async function benchWeaveSleeve(mb = 64): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), "weave-sleeve-bench-"));
  try {
    const helper = buildWeaveTap({ out: join(dir, "weave-tap") });
    const rows = [
      await measure("fastdp (kernel vxlan)", { tag: "bfd", mode: "fastdp" }, mb),
      await measure("sleeve", { tag: "bsl", mode: "sleeve", helper }, mb),
      await measure("sleeve encrypted", { tag: "bse", mode: "sleeve", encrypted: true, helper }, mb),
    ];
    const base = median(rows[0]!.mbps);
    console.log(`\n  ${mb} MB per transfer, median of ${RUNS}, one TCP stream pod → pod across two node namespaces`);
    console.log(`  ${"port".padEnd(22)} ${"MTU".padStart(5)} ${"MB/s".padStart(9)} ${"vs fastdp".padStart(10)}  runs (MB/s)            relay drops`);
    for (const r of rows) {
      const m = median(r.mbps);
      console.log(
        `  ${r.mode.padEnd(22)} ${String(r.mtu).padStart(5)} ${m.toFixed(1).padStart(9)} ${`${((m / base) * 100).toFixed(0)} %`.padStart(10)}  ${r.mbps
          .map((x) => x.toFixed(1))
          .join(", ")
          .padEnd(22)} ${r.drops}`,
      );
    }
    console.log("");
    return rows.map((r) => ({ name: `weave ${r.mode} pod→pod`, value: median(r.mbps), unit: "MB/s" }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await runIfMain(import.meta.url, "weave sleeve throughput (kernel)", () => benchWeaveSleeve(Number(process.argv[2] ?? 64)));
