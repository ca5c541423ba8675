// The shared conformance suite with flannel's vxlan config on 5 nodes, the cluster store being a
// real etcd started for this file (each simulated cluster under its own key prefix). Checks that
// need virtual lease expiry (dyn.crash: flannel's 24 h leases) or the in-memory outage switch are
// reported "not run" by the suite itself; etcd outages are covered by @cnikit/etcd's fault test.
import { defineConformanceSuite } from "@cnikit/conformance/vitest";
import { EtcdDatastore } from "@cnikit/etcd";
import { EtcdProcess } from "@cnikit/etcd/testing";
import { afterAll, beforeAll, describe } from "vitest";
import { flannelFixtures } from "../src/fixtures.ts";
import { flannel } from "../src/index.ts";

let etcd: EtcdProcess | undefined;

beforeAll(async () => {
  etcd = await EtcdProcess.start();
});
afterAll(async () => {
  await etcd?.cleanup();
});

const { config } = flannelFixtures.configs.find((c) => c.label === "vxlan")!;
describe("vxlan, 5 nodes, etcd store", () => {
  defineConformanceSuite(flannel, {
    config,
    configLabel: "vxlan",
    nodes: 5,
    invalidConfigs: flannelFixtures.invalidConfigs,
    store: {
      label: "etcd (started by this test)",
      create: (name) => {
        if (!etcd) throw new Error("etcd did not start (see beforeAll)");
        return EtcdDatastore.open({ endpoints: [etcd.endpoint], prefix: `/cnikit-flannel-conformance/${name}/` });
      },
    },
  });
});
