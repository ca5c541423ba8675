// Durability under kill -9: a child process writes to a FileDatastore as fast as it can and prints
// each write only after it was acknowledged; we SIGKILL it at seeded random moments, reopen the
// store and check that every acknowledged write is there, nothing is torn, and revisions only grow.
import { seededRandom } from "../src/random.ts";
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { FileDatastore } from "../src/store/file.ts";

const SEED = 20_251_122;
const ROUNDS = 30;
const WRITER = fileURLToPath(new URL("./fixtures/file-store-writer.ts", import.meta.url));
const TSX = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;

interface RoundOutput {
  lines: string[];
  stderr: string;
  signal: NodeJS.Signals | null;
  code: number | null;
}

/** Runs the writer once and SIGKILLs it `delayMs` after it is ready (or after spawn when `early`). */
function runWriter(dir: string, seed: number, round: number, delayMs: number, early: boolean): Promise<RoundOutput> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", TSX, WRITER, dir, String(seed), String(round)], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let timer: ReturnType<typeof setTimeout> | undefined;
    const killLater = (): void => {
      timer ??= setTimeout(() => child.kill("SIGKILL"), delayMs);
    };
    if (early) killLater();
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      stdout += chunk;
      if (!early && stdout.startsWith("ready\n")) killLater();
    });
    child.stderr.on("data", (chunk: string) => {
      stderr += chunk;
    });
    child.on("error", reject);
    // "close" comes after the process was reaped and its pipes drained: its PID is dead by then.
    child.on("close", (code, signal) => {
      if (timer) clearTimeout(timer);
      const complete = stdout.slice(0, stdout.lastIndexOf("\n") + 1);
      resolve({ lines: complete.split("\n").filter((l) => l.length > 0), stderr, signal, code });
    });
  });
}

describe("FileDatastore under kill -9", () => {
  const dir = mkdtempSync(join(tmpdir(), "cnikit-crash-"));
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it(`keeps every acknowledged write over ${ROUNDS} SIGKILLs at random moments (seed ${SEED})`, async () => {
    const random = seededRandom(SEED);
    // What the acknowledgements promise, accumulated over rounds.
    const counterFloor = new Map<string, number>();
    let pairFloor = 0;
    let revisionFloor = 0;
    const puts = new Map<string, { n: number; padding: number; revision: number }>();
    const deleting = new Set<string>();
    const deleted = new Set<string>();
    const leased = new Map<string, string>();
    let acked = 0;
    let killedEarly = 0;

    for (let round = 0; round < ROUNDS; round++) {
      const early = random() < 0.15;
      const delayMs = early ? 100 + Math.floor(random() * 700) : Math.floor(random() * 300);
      const seed = Math.floor(random() * 2 ** 31);
      const out = await runWriter(dir, seed, round, delayMs, early);
      const where = `round ${round} (seed ${seed}, ${early ? "early " : ""}kill after ${delayMs} ms)`;
      if (out.signal !== "SIGKILL") throw new Error(`${where}: the writer exited on its own (code ${out.code}):\n${out.stderr}`);
      if (out.lines[0] === "ready") out.lines.shift();
      else killedEarly++;

      const roundCounters = new Map<string, number>();
      for (const line of out.lines) {
        const f = line.split(" ");
        const rev = Number(f[f.length - 1]);
        switch (f[0]) {
          case "inc":
            roundCounters.set(f[1]!, Math.max(roundCounters.get(f[1]!) ?? 0, Number(f[2])));
            break;
          case "put":
            puts.set(f[1]!, { n: Number(f[2]), padding: Number(f[3]), revision: rev });
            break;
          case "del-start":
            deleting.add(f[1]!);
            continue;
          case "del":
            deleted.add(f[1]!);
            break;
          case "pair":
            pairFloor = Math.max(pairFloor, Number(f[1]));
            break;
          case "lease":
            leased.set(f[1]!, f[2]!);
            break;
          default:
            throw new Error(`${where}: unexpected writer output ${JSON.stringify(line)}`);
        }
        acked++;
        revisionFloor = Math.max(revisionFloor, rev);
      }

      const store = await FileDatastore.open({ dir });
      try {
        const revision = await store.revision();
        expect(revision, `${where}: revision went backwards`).toBeGreaterThanOrEqual(revisionFloor);

        // Counters: at least the last acknowledged value, at most one unacknowledged increment per
        // writer on top, and every increment one whole write (version === value).
        for (const [key, value] of roundCounters) counterFloor.set(key, Math.max(counterFloor.get(key) ?? 0, value));
        for (const [key, floor] of counterFloor) {
          const kv = await store.get(key);
          expect(kv, `${where}: counter ${key} lost`).toBeDefined();
          const value = Number(kv!.value);
          expect(value, `${where}: counter ${key} lost an acknowledged increment`).toBeGreaterThanOrEqual(floor);
          expect(value, `${where}: counter ${key} gained unexplained increments`).toBeLessThanOrEqual(floor + 3);
          expect(kv!.version, `${where}: counter ${key} torn`).toBe(value);
          counterFloor.set(key, value);
        }

        // The pair is written by one txn: both keys or neither, same value, same revision.
        const a = await store.get("pair/a");
        const b = await store.get("pair/b");
        if (pairFloor > 0) expect(a, `${where}: pair lost`).toBeDefined();
        expect(b?.value, `${where}: pair torn`).toBe(a?.value);
        expect(b?.modRevision, `${where}: pair torn`).toBe(a?.modRevision);
        if (a) {
          expect(Number(a.value), `${where}: pair lost an acknowledged txn`).toBeGreaterThanOrEqual(pairFloor);
          pairFloor = Number(a.value);
        }

        // Puts: each key is written once; present with its exact value unless a delete was issued.
        for (const [key, p] of puts) {
          const kv = await store.get(key);
          if (deleted.has(key)) {
            expect(kv, `${where}: acknowledged delete of ${key} undone`).toBeUndefined();
          } else if (kv || !deleting.has(key)) {
            expect(kv, `${where}: acknowledged put of ${key} lost`).toBeDefined();
            expect(kv!.value, `${where}: ${key} has a wrong value`).toBe(`${p.n}:${"x".repeat(p.padding)}`);
            expect(kv!.modRevision, `${where}: ${key} has a wrong revision`).toBe(p.revision);
            expect(kv!.version).toBe(1);
          }
          if (!kv) deleted.add(key);
        }

        // Leased keys: still attached to a live lease (1 h TTL on the real clock).
        for (const [key, lease] of leased) {
          expect((await store.get(key))?.lease, `${where}: leased ${key} lost`).toBe(lease);
          expect((await store.leaseInfo(lease))?.keys, `${where}: lease ${lease} lost`).toContain(key);
        }
        revisionFloor = revision;
      } finally {
        await store.close();
      }
    }
    // The test must have exercised something: many acknowledged writes, most rounds past "ready".
    expect(acked).toBeGreaterThan(ROUNDS * 20);
    expect(killedEarly).toBeLessThan(ROUNDS / 2);
  }, 120_000);
});
