// etcd stopped (SIGTERM) and killed (SIGKILL), then restarted on the same data directory and port,
// in the middle of concurrent compare-and-swap writers and watchers. Checked afterwards:
//  - no acknowledged write is lost, none is applied twice, and a write refused with TryAgainError
//    really wrote nothing;
//  - every watcher sees every committed increment exactly once, in order, and all agree;
//  - calls during the outage fail only with code-11 errors (TryAgainError or OutcomeUnknownError)
//    or wait, never longer than a bound; a lease kept alive by keepLeaseAlive survives.
import { ConflictError, TryAgainError, type WatchEvent } from "@cnikit/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EtcdDatastore, keepLeaseAlive, OutcomeUnknownError } from "../src/index.ts";
import { EtcdProcess } from "../src/testing.ts";

let etcd: EtcdProcess;

beforeAll(async () => {
  etcd = await EtcdProcess.start();
});
afterAll(async () => {
  await etcd?.cleanup();
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Counter {
  n: number;
  by: number;
  seq: number;
}

/** Longest a single call may take: retry window + a request timeout or two, plus slack for a loaded CI. */
const CALL_BOUND_MS = 15_000;

describe("etcd restarts under concurrent CAS writers and watchers", () => {
  it("loses no acknowledged write, applies none twice, and every watcher sees each increment once", async () => {
    const prefix = "/cnikit-faults/";
    const options = { endpoints: [etcd.endpoint], prefix, retryWindowMs: 1500, requestTimeoutMs: 2000 };
    const admin = await EtcdDatastore.connect(options);
    await admin.put("ctr", JSON.stringify({ n: 0, by: -1, seq: -1 }));
    const r0 = await admin.revision();

    // Watchers, each on its own connection, from before the first increment.
    const watchers = await Promise.all([0, 1].map(() => EtcdDatastore.connect(options)));
    const seen: WatchEvent[][] = [[], []];
    const ac = new AbortController();
    const watching = watchers.map(async (w, i) => {
      for await (const ev of w.watch("ctr", { fromRevision: r0, signal: ac.signal })) seen[i]!.push(ev);
    });

    // A lease kept alive through the outages.
    const leaseStore = await EtcdDatastore.connect(options);
    const lease = await leaseStore.grantLease(6);
    await leaseStore.put("alive", "yes", { lease });
    const keeper = keepLeaseAlive(leaseStore, lease, { ttlSeconds: 6 });

    const acked = new Map<string, number>(); // tag -> revision etcd acknowledged
    const refused = new Set<string>(); // TryAgainError: nothing written
    const unknown = new Set<string>(); // OutcomeUnknownError: maybe written
    const conflicted = new Set<string>();
    const outageErrors: string[] = [];
    let longest = 0;
    const outages: [number, number][] = [];
    let faultsDone = false;

    const timed = async <T>(call: () => Promise<T>): Promise<T> => {
      const start = Date.now();
      try {
        return await call();
      } finally {
        longest = Math.max(longest, Date.now() - start);
      }
    };

    const writer = async (w: number, target: number): Promise<void> => {
      const s = await EtcdDatastore.connect(options);
      let seq = 0;
      let mine = 0;
      try {
        while (mine < target || !faultsDone) {
          let kv;
          try {
            kv = await timed(() => s.get("ctr"));
          } catch (e) {
            if (!(e instanceof TryAgainError)) throw e;
            outageErrors.push(e.constructor.name);
            await sleep(50);
            continue;
          }
          const cur = JSON.parse(kv!.value) as Counter;
          const next: Counter = { n: cur.n + 1, by: w, seq: seq++ };
          const tag = `${w}.${next.seq}`;
          try {
            const res = await timed(() => s.put("ctr", JSON.stringify(next), { ifRevision: kv!.modRevision }));
            acked.set(tag, res.revision);
            mine++;
          } catch (e) {
            if (e instanceof ConflictError) conflicted.add(tag);
            else if (e instanceof TryAgainError) {
              refused.add(tag);
              outageErrors.push(e.constructor.name);
              await sleep(50);
            } else if (e instanceof OutcomeUnknownError) {
              unknown.add(tag);
              outageErrors.push(e.constructor.name);
            } else throw e;
          }
        }
      } finally {
        await s.close();
      }
    };

    const faults = async (): Promise<void> => {
      for (const how of ["stop", "kill"] as const) {
        await sleep(700);
        const down = Date.now();
        if (how === "stop") await etcd.stop();
        else await etcd.kill();
        // The second outage outlasts the clients' retry window, so calls also fail with TryAgainError.
        await sleep(how === "stop" ? 800 : 2500);
        await etcd.restart();
        outages.push([down, Date.now()]);
      }
      faultsDone = true;
    };

    await Promise.all([faults(), ...[0, 1, 2, 3].map((w) => writer(w, 15))]);

    const final = (await admin.get("ctr"))!;
    const total = (JSON.parse(final.value) as Counter).n;
    // Wait until both watchers reached the final revision.
    const deadline = Date.now() + 20_000;
    while (seen.some((evs) => (evs.at(-1)?.revision ?? 0) < final.modRevision) && Date.now() < deadline) await sleep(50);
    ac.abort();
    await Promise.all(watching);

    // Every increment once, in order, and the watchers agree.
    for (const evs of seen) {
      const values = evs.map((e) => (e.type === "put" ? (JSON.parse(e.kv.value) as Counter) : undefined));
      expect(values.every((v) => v !== undefined)).toBe(true);
      expect(values.map((v) => v!.n)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
      for (let i = 1; i < evs.length; i++) expect(evs[i]!.revision).toBeGreaterThan(evs[i - 1]!.revision);
    }
    expect(seen[1]!.map((e) => e.revision)).toEqual(seen[0]!.map((e) => e.revision));

    const applied = new Map<string, number>();
    for (const ev of seen[0]!) {
      const v = JSON.parse((ev as Extract<WatchEvent, { type: "put" }>).kv.value) as Counter;
      const tag = `${v.by}.${v.seq}`;
      expect(applied.has(tag), `${tag} applied twice`).toBe(false);
      applied.set(tag, ev.revision);
    }
    for (const [tag, revision] of acked) expect(applied.get(tag), `acknowledged ${tag} lost`).toBe(revision);
    for (const tag of refused) expect(applied.has(tag), `${tag} refused with TryAgainError but applied`).toBe(false);
    for (const tag of conflicted) expect(applied.has(tag), `${tag} refused with ConflictError but applied`).toBe(false);
    // Whatever was applied was either acknowledged or reported as unknown.
    for (const tag of applied.keys()) expect(acked.has(tag) || unknown.has(tag), `${tag} applied without being reported`).toBe(true);

    // The outages happened while writers were working, and calls stayed within the bound.
    expect(outages).toHaveLength(2);
    expect(outageErrors.length + unknown.size + refused.size).toBeGreaterThan(0);
    expect(longest).toBeLessThan(CALL_BOUND_MS);

    expect((await admin.get("alive"))?.value).toBe("yes");
    keeper.stop();
    await leaseStore.revokeLease(lease);
    for (const s of [admin, leaseStore, ...watchers]) await s.close();
  });
});
