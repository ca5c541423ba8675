/**
 * cnikitd answers a bundled backend's errors with their own codes: a backend bundled with its own
 * copy of @cnikit/core throws CniErrors that are not `instanceof` ours, so the daemon recognises
 * them by `code` and `name` (core's CniError.from), never turning a PoolExhaustedError into 999.
 */
import { builtinBackend } from "@cnikit/backends";
import { CniError, type Backend, type NodeAgent } from "@cnikit/core";
import { afterEach, describe, expect, it } from "vitest";
import { flannelDaemon, netconf, type TestDaemon } from "./helpers.ts";

const running: TestDaemon[] = [];
afterEach(async () => {
  for (const d of running.splice(0)) await d.daemon.stop();
});

/** What another copy of core's PoolExhaustedError looks like from here: an Error with code 100 and its class name, not a CniError of ours. */
function foreignPoolExhausted(): Error {
  const e = new Error("[bundled] node node-a: no free address left in 10.244.1.0/24");
  e.name = "PoolExhaustedError";
  return Object.assign(e, { code: 100, pool: "10.244.1.0/24" });
}

/** Flannel whose ADD throws `make()` instead of attaching. */
function throwingBackend(make: () => unknown): Backend<unknown> {
  const inner = builtinBackend("flannel").backend;
  return {
    ...inner,
    createAgent(ctx): NodeAgent {
      const agent = inner.createAgent(ctx);
      return new Proxy(agent, {
        get(target, prop) {
          if (prop === "attach") return async () => Promise.reject(make());
          const value = Reflect.get(target, prop, target) as unknown;
          return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        },
      });
    },
  };
}

async function addFails(make: () => unknown): Promise<Record<string, unknown>> {
  const d = await flannelDaemon({ backend: throwingBackend(make) });
  running.push(d);
  const r = await d.daemon.handle({ CNI_COMMAND: "ADD", CNI_CONTAINERID: "c1", CNI_NETNS: "/var/run/netns/c1", CNI_IFNAME: "eth0" }, netconf());
  expect(r.exitCode).toBe(1);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

describe("cnikitd and errors of another copy of @cnikit/core", () => {
  it("a foreign PoolExhaustedError (code 100, not instanceof CniError) reaches the runtime as 100 with its message", async () => {
    expect(foreignPoolExhausted()).not.toBeInstanceOf(CniError);
    const json = await addFails(foreignPoolExhausted);
    expect(json).toMatchObject({ code: 100, msg: "[bundled] node node-a: no free address left in 10.244.1.0/24" });
  });

  it("a plain object shaped like a CniError (code, msg, details) keeps code and details", async () => {
    const json = await addFails(() => ({ name: "ConfigError", code: 7, msg: "[bundled] Network: must be a CIDR", details: "field Network: must be a CIDR" }));
    expect(json).toMatchObject({ code: 7, msg: "[bundled] Network: must be a CIDR", details: "field Network: must be a CIDR" });
  });

  it("errors that only happen to carry a number are still 999: a plain Error with code 100 and no error class name, a DOMException-like AbortError (code 20)", async () => {
    expect(await addFails(() => Object.assign(new Error("grpc-ish"), { code: 100 }))).toMatchObject({ code: 999, msg: "grpc-ish" });
    expect(await addFails(() => Object.assign(new Error("aborted"), { name: "AbortError", code: 20 }))).toMatchObject({ code: 999 });
  });

  it("CniError.from keeps the foreign name, so logs say which error it was", () => {
    const e = CniError.from(foreignPoolExhausted());
    expect(e).toMatchObject({ code: 100, name: "PoolExhaustedError" });
    expect(e.cause).toBeInstanceOf(Error);
  });
});
