// Workload endpoints: what an agent writes for a pod is what every policy component reads back,
// and a record with an address that is not one is refused naming the key and the field.
import { describe, expect, it } from "vitest";
import { ENDPOINT_PREFIX, decodeEndpoint, endpointKey, endpointOf } from "../src/endpoints.ts";
import { hostIfName } from "../src/plan.ts";
import type { PodRecord } from "../src/plan.ts";

const pod: PodRecord = {
  containerId: "c1",
  ifName: "eth0",
  address: "10.245.1.2",
  handle: "k8s-pod-network.c1",
  namespace: "x",
  podName: "web",
  labels: { app: "web" },
  ports: [{ name: "http", containerPort: 8080 }],
};

describe("workload endpoints", () => {
  it("round-trip: the record of a pod decodes to the same directory pod, defaults filled", () => {
    const key = endpointKey("n1", pod);
    expect(key).toBe(`${ENDPOINT_PREFIX}n1/c1/eth0`);
    const record = endpointOf("n1", pod);
    expect(record).toEqual({
      node: "n1",
      key: "c1/eth0",
      namespace: "x",
      name: "web",
      labels: { app: "web" },
      ips: ["10.245.1.2"],
      ports: [{ name: "http", containerPort: 8080, protocol: "TCP" }],
      hostIf: hostIfName(pod),
    });
    expect(decodeEndpoint(key, JSON.stringify(record))).toEqual(record);
    const bare = endpointOf("n1", { containerId: "c2", ifName: "eth0", address: "10.245.1.3", handle: "h" });
    expect(bare).toMatchObject({ namespace: "default", name: "c2", labels: {}, ports: [] });
  });

  it.each([
    { label: "not an address", ips: ["10.245.1.300"] },
    { label: "a CIDR", ips: ["10.245.1.2/32"] },
    { label: "empty", ips: [""] },
  ])("refuses an endpoint whose address is $label, naming the key and ips[i]", ({ ips }) => {
    const key = endpointKey("n2", pod);
    const value = JSON.stringify({ ...endpointOf("n2", pod), ips: ["10.245.1.9", ...ips] });
    expect(() => decodeEndpoint(key, value)).toThrow(expect.objectContaining({ code: 7, field: `${key}: ips[1]` }));
  });
});
