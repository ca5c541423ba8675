// The shared conformance suite with calico's "bgp" config on 5 nodes, the cluster store being a
// real etcd started for this file (each simulated cluster under its own key prefix). Checks that
// need virtual lease expiry (dyn.crash) or the in-memory outage switch are reported "not run" by the
// suite itself; etcd outages are covered by @cnikit/etcd's fault test.
import { defineConformanceSuite } from "@cnikit/conformance/vitest";
import { EtcdDatastore } from "@cnikit/etcd";
import { EtcdProcess } from "@cnikit/etcd/testing";
import { afterAll, beforeAll, describe } from "vitest";
import { calicoFixtures } from "../src/fixtures.ts";
import { calico } from "../src/index.ts";

let etcd: EtcdProcess | undefined;

beforeAll(async () => {
  etcd = await EtcdProcess.start();
});
afterAll(async () => {
  await etcd?.cleanup();
});

const { config } = calicoFixtures.configs.find((c) => c.label === "bgp")!;
describe("bgp, 5 nodes, etcd store", () => {
  defineConformanceSuite(calico, {
    config,
    configLabel: "bgp",
    nodes: 5,
    invalidConfigs: calicoFixtures.invalidConfigs,
    store: {
      label: "etcd (started by this test)",
      create: (name) => {
        if (!etcd) throw new Error("etcd did not start (see beforeAll)");
        return EtcdDatastore.open({ endpoints: [etcd.endpoint], prefix: `/cnikit-calico-conformance/${name}/` });
      },
    },
  });
});
