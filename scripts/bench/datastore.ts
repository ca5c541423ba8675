// Datastore throughput: compare-and-swap increments (get, then put with ifRevision) over 1000 keys
// on MemoryDatastore and on FileDatastore with fsync on and off (one writer, and 16 concurrent
// writers sharing fsyncs through group commit); watch event delivery; and a memory store holding a
// million keys (bulk put rate, prefix listing). Wall-clock figures from performance.now(); nothing
// here asserts a speed. The file store runs in a temp dir that is removed afterwards.
// Run alone: pnpm exec tsx --conditions=source scripts/bench/datastore.ts
import { mkdtempSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConflictError, FileDatastore, MemoryDatastore, type Datastore } from "@cnikit/core";
import { runIfMain, type Figure } from "./figures.ts";

const KEYS = 1000;

async function seed(store: Datastore): Promise<void> {
  await Promise.all(Array.from({ length: KEYS }, (_, i) => store.put(`bench/${i}`, "0")));
}

/** One writer: get + put(ifRevision) per op, cycling over the keys, for at least `minMs`. */
async function casSequential(store: Datastore, minMs: number): Promise<number> {
  let ops = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < minMs) {
    for (let j = 0; j < 100; j++, ops++) {
      const key = `bench/${ops % KEYS}`;
      const kv = (await store.get(key))!;
      await store.put(key, String(Number(kv.value) + 1), { ifRevision: kv.modRevision });
    }
  }
  return ops / ((performance.now() - t0) / 1000);
}

/** `workers` concurrent writers on distinct keys (conflicts retried), for at least `minMs`. */
export async function casConcurrent(store: Datastore, workers: number, minMs: number): Promise<number> {
  let ops = 0;
  const t0 = performance.now();
  const worker = async (w: number): Promise<void> => {
    for (let i = 0; performance.now() - t0 < minMs; i++) {
      const key = `bench/${(w + i * workers) % KEYS}`;
      for (;;) {
        const kv = (await store.get(key))!;
        try {
          await store.put(key, String(Number(kv.value) + 1), { ifRevision: kv.modRevision });
          ops++;
          break;
        } catch (e) {
          if (!(e instanceof ConflictError)) throw e;
        }
      }
    }
  };
  await Promise.all(Array.from({ length: workers }, (_, w) => worker(w)));
  return ops / ((performance.now() - t0) / 1000);
}

/** Events per second from puts to a consumer running alongside. */
async function watchRate(events: number): Promise<number> {
  const store = new MemoryDatastore({ historyLimit: 1000 });
  const t0 = performance.now();
  const consumer = (async () => {
    let n = 0;
    for await (const _ of store.watch("w/")) if (++n === events) break;
  })();
  for (let i = 0; i < events; i++) await store.put(`w/${i % 1000}`, String(i));
  await consumer;
  const rate = events / ((performance.now() - t0) / 1000);
  await store.close();
  return rate;
}

async function millionKeys(): Promise<Figure[]> {
  const store = new MemoryDatastore({ historyLimit: 1000 });
  const n = 1_000_000;
  // Inserted in a scattered order so the sorted index does real work.
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const j = (i * 7919) % n;
    await store.put(`/registry/pods/ns${j % 100}/pod-${j}`, `{"node":"n${j % 500}"}`);
  }
  const putRate = n / ((performance.now() - t0) / 1000);
  let listed = 0;
  const t1 = performance.now();
  const lists = 200;
  for (let i = 0; i < lists; i++) listed += (await store.list(`/registry/pods/ns${i % 100}/pod-${i}`)).items.length;
  const listMs = (performance.now() - t1) / lists;
  const heapMb = process.memoryUsage().heapUsed / 1024 / 1024;
  await store.close();
  if (listed === 0) throw new Error("bench: prefix listings found nothing");
  return [
    { name: "memory: put, 1M distinct keys", value: putRate, unit: "ops/s" },
    { name: "memory: list(prefix) among 1M keys", value: listMs, unit: "ms/list" },
    { name: "memory: heap with 1M keys", value: heapMb, unit: "MiB" },
  ];
}

/** Runs every datastore benchmark and returns its figures. */
export async function benchDatastore(): Promise<Figure[]> {
  const figures: Figure[] = [];

  const mem = new MemoryDatastore({ historyLimit: 1000 });
  await seed(mem);
  await casSequential(mem, 300); // warm-up
  figures.push({ name: "memory: CAS put (get + put ifRevision), 1000 keys", value: await casSequential(mem, 2000), unit: "ops/s" });
  figures.push({ name: "memory: CAS put, 16 concurrent writers", value: await casConcurrent(mem, 16, 2000), unit: "ops/s" });
  await mem.close();

  const dir = mkdtempSync(join(tmpdir(), "cnikit-bench-datastore-"));
  try {
    for (const fsync of [true, false]) {
      const store = await FileDatastore.open({ dir: join(dir, fsync ? "fsync-on" : "fsync-off"), fsync, historyLimit: 1000 });
      await seed(store);
      const label = `file (fsync ${fsync ? "on" : "off"})`;
      figures.push({ name: `${label}: CAS put, 1000 keys`, value: await casSequential(store, 2000), unit: "ops/s" });
      figures.push({ name: `${label}: CAS put, 16 concurrent writers`, value: await casConcurrent(store, 16, 2000), unit: "ops/s" });
      await store.close();
    }
    // Reopen cost: replaying the fsync-on log just written.
    const t0 = performance.now();
    const again = await FileDatastore.open({ dir: join(dir, "fsync-on") });
    const reopenMs = performance.now() - t0;
    const n = (await again.list("bench/")).items.length;
    await again.close();
    if (n !== KEYS) throw new Error(`bench: reopened file store has ${n} keys, expected ${KEYS}`);
    figures.push({ name: "file: reopen (snapshot + log replay)", value: reopenMs, unit: "ms" });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }

  figures.push({ name: "memory: watch delivery (put -> consumer)", value: await watchRate(200_000), unit: "events/s" });
  figures.push(...(await millionKeys()));
  return figures;
}

await runIfMain(import.meta.url, "datastore", benchDatastore);
