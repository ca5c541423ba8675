import { describe, expect, it } from "vitest";
import { CniCode, KernelLacksError } from "@cnikit/core";
import type { KernelFeatures } from "@cnikit/linux";
import { MissingLabToolError, checkKernel, checkTools } from "../src/index.ts";

describe("checkKernel", () => {
  const noIpip = {
    bridge: true,
    vxlan: true,
    veth: true,
    dummy: true,
    ipip: false,
    gre: false,
    wireguard: false,
    vrf: true,
    nftables: true,
    nftNat: true,
    brNetfilter: true,
    sleeve: false,
    reasons: { ipip: "Error: Unknown device type." },
  } satisfies KernelFeatures;
  it("refuses a mode that needs ipip on a kernel without it, saying so", () => {
    let caught: unknown;
    try {
      checkKernel(["ipip"], "calico mode ipip-always", noIpip);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(KernelLacksError);
    expect((caught as KernelLacksError).code).toBe(CniCode.KernelLacksFeature);
    expect((caught as Error).message).toMatch(/^kernel lacks ipip: calico mode ipip-always needs ipip devices, which this kernel cannot create \(Error: Unknown device type.\)/);
  });
  it("accepts what the kernel has", () => {
    expect(() => checkKernel(["vxlan", "none"], "flannel mode vxlan", noIpip)).not.toThrow();
  });
});

describe("checkTools", () => {
  it("names the Debian package of the first missing tool", () => {
    let caught: unknown;
    try {
      checkTools((bin) => bin !== "etcd");
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(MissingLabToolError);
    expect((caught as Error).message).toContain("etcd-server");
  });
});
