/**
 * The per-node sandbox: a killed clock fires nothing again, a killed store handle rejects every
 * call and ends its watches, a killed transport resets its connections as on a crash.
 */
import { ClosedError, MemoryDatastore, MemoryNetwork, VirtualClock, type WatchEvent } from "@cnikit/core";
import { describe, expect, it } from "vitest";
import { SandboxClock, SandboxStore, SandboxTransport } from "../src/index.ts";

describe("SandboxClock", () => {
  it("forwards timers until killed, then fires nothing", async () => {
    const clock = new VirtualClock();
    const sb = new SandboxClock(clock);
    const fired: string[] = [];
    sb.setTimeout(() => fired.push("t1"), 10);
    const iv = sb.setInterval(() => fired.push("iv"), 5);
    const cancelled = sb.setTimeout(() => fired.push("never"), 7);
    cancelled.cancel();
    let slept = false;
    void sb.sleep(100).then(() => (slept = true));
    expect(sb.pending()).toBe(3);
    await clock.advance(12);
    expect(fired).toEqual(["iv", "t1", "iv"]);
    sb.kill();
    expect(sb.pending()).toBe(0);
    expect(clock.pending()).toBe(0);
    await clock.advance(200);
    expect(fired).toEqual(["iv", "t1", "iv"]);
    expect(slept).toBe(false);
    sb.setTimeout(() => fired.push("late"), 1);
    await clock.advance(5);
    expect(fired).toEqual(["iv", "t1", "iv"]);
    iv.cancel();
    expect(() => sb.setInterval(() => {}, 0)).toThrow(RangeError);
  });
});

describe("SandboxStore", () => {
  it("passes calls through, then rejects them with ClosedError and ends watches", async () => {
    const clock = new VirtualClock();
    const store = new MemoryDatastore({ clock });
    const sb = new SandboxStore(store, "node-1");
    await sb.put("k", "v");
    expect((await sb.get("k"))?.value).toBe("v");
    const events: WatchEvent[] = [];
    let ended = false;
    void (async () => {
      for await (const ev of sb.watch("k")) events.push(ev);
      ended = true;
    })();
    await store.put("k", "w");
    await clock.advance(0);
    expect(events.length).toBe(1);
    sb.kill();
    await clock.advance(0);
    expect(ended).toBe(true);
    await expect(sb.get("k")).rejects.toBeInstanceOf(ClosedError);
    await expect(sb.keepAlive("1")).rejects.toBeInstanceOf(ClosedError);
    // The shared store itself is untouched.
    expect((await store.get("k"))?.value).toBe("w");
  });
});

describe("SandboxTransport", () => {
  it("a crash resets the peers' connections and the name can be reused", async () => {
    const clock = new VirtualClock();
    const net = new MemoryNetwork({ clock });
    const a = new SandboxTransport(net.transport("a"), net);
    const b = net.transport("b");
    const closed: string[] = [];
    b.listen("svc", (conn) => conn.onClose((why) => closed.push(why)));
    const conn = a.connect("b", "svc");
    await clock.advance(1);
    await conn;
    a.kill(true);
    await clock.advance(1);
    expect(closed).toEqual(["reset"]);
    await expect(a.connect("b", "svc")).rejects.toBeInstanceOf(ClosedError);
    expect(() => a.sendDatagram("b", "svc", new Uint8Array(1))).not.toThrow();
    expect(() => net.transport("a")).not.toThrow();
  });
});
