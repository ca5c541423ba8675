// The etcd datastore against the in-memory one: compare-and-swap increments (get, then put with
// ifRevision) by one writer and by 16 concurrent writers over 1000 keys, and watch delivery
// latency (from just before put() to the event reaching a watcher on another connection) at p50 and
// p99. Starts its own single-member etcd (Debian package etcd-server) on a free loopback port with a
// temporary data directory (fsync on, as etcd always does) and stops it by PID afterwards.
// Wall-clock figures from performance.now(); nothing here asserts a speed.
// Run alone: pnpm exec tsx --conditions=source scripts/bench/etcd.ts
import { MemoryDatastore, type Datastore } from "@cnikit/core";
import { EtcdDatastore } from "../../packages/etcd/src/index.ts";
import { EtcdProcess } from "../../packages/etcd/src/testing.ts";
import { casConcurrent } from "./datastore.ts";
import { runIfMain, type Figure } from "./figures.ts";

const KEYS = 1000;

async function seed(store: Datastore): Promise<void> {
  for (let i = 0; i < KEYS; i += 100) await Promise.all(Array.from({ length: 100 }, (_, j) => store.put(`bench/${i + j}`, "0")));
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/**
 * Watch delivery latency in ms (p50, p99) over `n` sequential puts seen by a watcher on `reader`:
 * arrival time minus the time just before `put()`, matched by revision (an event may arrive before
 * its put's answer).
 */
async function watchLatency(writer: Datastore, reader: Datastore, n: number): Promise<{ p50: number; p99: number }> {
  const sent = new Map<number, number>();
  const arrived = new Map<number, number>();
  const from = await writer.revision();
  const it = reader.watch("lat/", { fromRevision: from })[Symbol.asyncIterator]();
  const consumer = (async () => {
    while (arrived.size < n) {
      const r = await it.next();
      if (r.done) throw new Error("bench: the watch ended early");
      arrived.set(r.value.revision, performance.now());
    }
  })();
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    const { revision } = await writer.put(`lat/${i % 50}`, String(i));
    sent.set(revision, t);
  }
  await consumer;
  await it.return?.();
  const latencies: number[] = [];
  for (const [revision, t] of sent) {
    const got = arrived.get(revision);
    if (got === undefined) throw new Error(`bench: no event for revision ${revision}`);
    latencies.push(got - t);
  }
  latencies.sort((a, b) => a - b);
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

/** Runs the etcd-vs-memory figures (starts and stops its own etcd). */
export async function benchEtcd(): Promise<Figure[]> {
  const figures: Figure[] = [];
  const etcd = await EtcdProcess.start();
  try {
    const stores: { label: string; writer: Datastore; reader: Datastore; close(): Promise<void> }[] = [];
    const mem = new MemoryDatastore({ historyLimit: 10_000 });
    stores.push({ label: "memory", writer: mem, reader: mem, close: () => mem.close() });
    const w = await EtcdDatastore.connect({ endpoints: [etcd.endpoint], prefix: "/cnikit-bench/" });
    const r = await EtcdDatastore.connect({ endpoints: [etcd.endpoint], prefix: "/cnikit-bench/" });
    stores.push({
      label: "etcd",
      writer: w,
      reader: r,
      close: async () => {
        await w.close();
        await r.close();
      },
    });
    for (const s of stores) {
      await seed(s.writer);
      await casConcurrent(s.writer, 1, 300); // warm-up
      figures.push({ name: `${s.label}: CAS put (get + put ifRevision), 1 writer`, value: await casConcurrent(s.writer, 1, 3000), unit: "ops/s" });
      figures.push({ name: `${s.label}: CAS put, 16 concurrent writers`, value: await casConcurrent(s.writer, 16, 3000), unit: "ops/s" });
      const lat = await watchLatency(s.writer, s.reader, s.label === "memory" ? 20_000 : 2000);
      figures.push({ name: `${s.label}: watch delivery latency p50`, value: lat.p50 * 1000, unit: "µs" });
      figures.push({ name: `${s.label}: watch delivery latency p99`, value: lat.p99 * 1000, unit: "µs" });
      await s.close();
    }
  } finally {
    await etcd.cleanup();
  }
  return figures;
}

await runIfMain(import.meta.url, "etcd", benchEtcd);
