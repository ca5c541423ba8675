// The shared Datastore contract suite (the same one the memory and file stores pass), run unchanged
// against a real etcd started for this file. Leases run on etcd's wall clock: the suite's
// real-time lease checks wait for short TTLs instead of advancing a virtual clock.
import { defineDatastoreSuite } from "@cnikit/core/testing";
import { afterAll, beforeAll } from "vitest";
import { EtcdDatastore } from "../src/index.ts";
import { EtcdProcess } from "../src/testing.ts";

let etcd: EtcdProcess | undefined;
let n = 0;

beforeAll(async () => {
  etcd = await EtcdProcess.start();
});

afterAll(async () => {
  await etcd?.cleanup();
});

defineDatastoreSuite(
  "EtcdDatastore",
  async () => {
    if (!etcd) throw new Error("etcd did not start (see beforeAll)");
    const server = etcd;
    const filler = await EtcdDatastore.connect({ endpoints: [server.endpoint], prefix: `/cnikit-test-filler/${process.pid}/` });
    // A fresh prefix per test: every test sees an empty store, as with the in-process stores.
    const store = await EtcdDatastore.connect({ endpoints: [server.endpoint], prefix: `/cnikit-test/${process.pid}/${n++}/` });
    return {
      store,
      // The contract's compact(r) forgets revision r too; etcd keeps the revision it compacts at, so
      // compact at r + 1, writing one key outside the store's prefix first when r is the newest.
      compact: async (revision) => {
        if (revision >= (await store.revision())) await filler.put("bump", String(revision));
        await store.compact(revision);
      },
      // Leases a test left behind must not expire (bumping the revision) during the next test.
      cleanup: async () => {
        await filler.close();
        await server.revokeAllLeases();
      },
    };
  },
  { propertyRuns: 30, realTimeLeases: { ttlSeconds: 3 } },
);
