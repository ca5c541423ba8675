// What every benchmark module returns, and the one way they are printed (by `pnpm bench` and by a
// module run on its own).

/** One measured figure, e.g. { name: "allocate+release /16 at 50%", value: 512000, unit: "ops/s" }. */
export interface Figure {
  name: string;
  value: number;
  unit: string;
}

/** The figures as aligned lines: large values with thousands separators, small ones with 2 decimals. */
export function formatFigures(figures: Figure[]): string {
  const width = Math.max(0, ...figures.map((f) => f.name.length));
  return figures
    .map((f) => {
      const value = Math.abs(f.value) >= 100 ? Math.round(f.value).toLocaleString("en-US") : f.value.toFixed(2);
      return `  ${f.name.padEnd(width)}  ${value.padStart(14)} ${f.unit}`;
    })
    .join("\n");
}

/** When the calling module is the script node was started with, runs its benchmark and prints it. */
export async function runIfMain(moduleUrl: string, title: string, run: () => Promise<Figure[]>): Promise<void> {
  if (moduleUrl !== `file://${process.argv[1]}`) return;
  const started = performance.now();
  console.log(`${title} — node ${process.version}, ${process.platform}/${process.arch}`);
  console.log(formatFigures(await run()));
  console.log(`(${((performance.now() - started) / 1000).toFixed(1)} s)`);
}
