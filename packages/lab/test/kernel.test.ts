import { describe, expect, it } from "vitest";
import { CniCode, KernelLacksError } from "@cnikit/core";
import { MissingToolError, requireKernel } from "../src/index.ts";
import { checkTools } from "../src/kernel.ts";

describe("requireKernel", () => {
  const noIpip = (e: string) => e !== "ipip";
  it("refuses a mode that needs ipip on a kernel without it, saying so", () => {
    let caught: unknown;
    try {
      requireKernel(["ipip"], "calico mode ipip-always", noIpip);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(KernelLacksError);
    expect((caught as KernelLacksError).code).toBe(CniCode.KernelLacksFeature);
    expect((caught as Error).message).toMatch(/^kernel lacks ipip: calico mode ipip-always needs ipip/);
  });
  it("accepts what the kernel has", () => {
    expect(() => requireKernel(["vxlan", "none"], "flannel mode vxlan", noIpip)).not.toThrow();
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
    expect(caught).toBeInstanceOf(MissingToolError);
    expect((caught as Error).message).toContain("etcd-server");
  });
});
