/**
 * The cross-process lock on the runtime's result cache (src/runtime-lock.ts `FileLocks`): two
 * runtimes in two real processes sharing one cache directory race ADD and DEL of one attachment
 * and the cache always agrees with the plugin's reservations; a lock left by a process killed with
 * -9 is taken over; dead, reused, other-boot and unreadable owners; a live holder is waited for and
 * named when the wait gives up.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readdirSync, utimesSync, writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CniCode } from "@cnikit/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CniRuntime, loadConfList } from "../src/runtime.ts";
import { FileLocks, currentLockOwner, lockOwnerAlive, type LockOwner } from "../src/runtime-lock.ts";
import { tempDir, until } from "./helpers.ts";

const tmp = tempDir("cnikit-lock-");
const here = fileURLToPath(new URL(".", import.meta.url));
const pkg = join(here, "..");
const driver = join(here, "fixtures", "runtime-driver.ts");
const cniPath = join(tmp.dir, "bin");
const reservations = join(tmp.dir, "reservations");
const release = join(tmp.dir, "release");

/**
 * A plugin with state of its own, as an IPAM plugin has: ADD writes the reservation file
 * `<reservations>/<cid>.<ifname>` first, then takes a while (setting up the interface) before it
 * answers; DEL waits a little, then removes the reservation. The container id `block` waits in ADD
 * until `release` exists.
 */
const PLUGIN = `#!/bin/sh
res="${reservations}/$CNI_CONTAINERID.$CNI_IFNAME"
case "$CNI_COMMAND" in
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}' ;;
ADD)
  cat >/dev/null
  echo "$CNI_CONTAINERID" >"$res"
  if [ "$CNI_CONTAINERID" = block ]; then while [ ! -e "${release}" ]; do sleep 0.02; done; fi
  sleep 0.05
  echo '{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.2/24"}]}' ;;
DEL)
  cat >/dev/null
  sleep 0.02
  rm -f "$res" ;;
*) cat >/dev/null ;;
esac
`;
const CONFLIST = JSON.stringify({ cniVersion: "1.0.0", name: "locknet", plugins: [{ type: "reserving" }] });
const list = loadConfList(CONFLIST);

interface Driver {
  child: ChildProcessWithoutNullStreams;
  pid: number;
  send(op: "ADD" | "DEL", containerId: string): Promise<number>;
  close(): Promise<void>;
}

const drivers: Driver[] = [];

/** Starts one runtime process on `cacheDir` and waits until it says it is ready. */
async function startDriver(cacheDir: string): Promise<Driver> {
  const child = spawn(process.execPath, ["--import", "tsx", "--conditions=source", driver, cacheDir, cniPath, CONFLIST], { cwd: pkg, stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async (): Promise<Record<string, unknown>> => {
    const r = await lines.next();
    if (r.done) throw new Error(`runtime process ${child.pid} ended: ${stderr}`);
    return JSON.parse(r.value) as Record<string, unknown>;
  };
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const ready = await next();
  expect(ready["ready"]).toBe(child.pid);
  const d: Driver = {
    child,
    pid: child.pid!,
    async send(op, containerId) {
      child.stdin.write(`${JSON.stringify({ op, containerId })}\n`);
      const answer = await next();
      expect(answer["op"]).toBe(op);
      return answer["code"] as number;
    },
    async close() {
      child.stdin.end();
      if (child.exitCode === null && child.signalCode === null) await exited;
    },
  };
  drivers.push(d);
  return d;
}

beforeAll(() => {
  mkdirSync(cniPath, { recursive: true });
  mkdirSync(reservations, { recursive: true });
  writeFileSync(join(cniPath, "reserving"), PLUGIN);
  chmodSync(join(cniPath, "reserving"), 0o755);
});

afterAll(async () => {
  writeFileSync(release, "");
  for (const d of drivers.splice(0)) await d.close();
  tmp.remove();
});

function consistency(cacheDir: string, containerId: string): { cached: boolean; reserved: boolean } {
  return { cached: existsSync(join(cacheDir, "results", `locknet:${containerId}:eth0`)), reserved: existsSync(join(reservations, `${containerId}.eth0`)) };
}

describe("two runtime processes sharing a cache directory", () => {
  it("cannot interleave an ADD and a DEL of one attachment: after every race the cache and the reservation agree", async () => {
    const cacheDir = join(tmp.dir, "race");
    const [a, b] = await Promise.all([startDriver(cacheDir), startDriver(cacheDir)]);
    for (let round = 0; round < 12; round++) {
      // Alternate who ADDs; both calls are in flight at once.
      const [adder, deleter] = round % 2 === 0 ? [a!, b!] : [b!, a!];
      const codes = await Promise.all([adder.send("ADD", "race"), deleter.send("DEL", "race")]);
      expect(codes, `round ${round}`).toEqual([0, 0]);
      const state = consistency(cacheDir, "race");
      expect(state.cached, `round ${round}: cache ${state.cached ? "holds" : "lacks"} the attachment, the plugin ${state.reserved ? "holds" : "lacks"} its reservation`).toBe(state.reserved);
      // Start every round from nothing.
      expect(await a!.send("DEL", "race")).toBe(0);
      expect(consistency(cacheDir, "race")).toEqual({ cached: false, reserved: false });
    }
    // No lock file is left behind.
    expect(readdirSync(join(cacheDir, "locks")).filter((f) => !f.endsWith(".tmp"))).toEqual([]);
    await Promise.all([a!.close(), b!.close()]);
  }, 180_000);

  it("takes over the lock of a runtime killed with -9 in the middle of an ADD (its pid is dead), without waiting for a timeout", async () => {
    const cacheDir = join(tmp.dir, "crash");
    const victim = await startDriver(cacheDir);
    const pending = victim.send("ADD", "block").catch(() => -1);
    const locks = new FileLocks(join(cacheDir, "locks"));
    await until(async () => (await locks.holder("block"))?.pid === victim.pid, 30_000, "the victim to hold the lock of block");
    victim.child.kill("SIGKILL");
    await victim.close();
    await pending;
    const left = (await locks.holder("block"))!;
    expect(left.pid).toBe(victim.pid);
    expect(lockOwnerAlive(left)).toBe(false);
    // Let the orphaned plugin of the killed runtime finish, then ADD from this process. The wait for
    // a live holder would be 60 s: the test's own timeout is shorter, so only a takeover passes.
    writeFileSync(release, "");
    const runtime = new CniRuntime({ cniPath: [cniPath], cacheDir, lockTimeoutMs: 60_000 });
    const result = await runtime.add(list, { containerId: "block", ifName: "eth0", netns: "/var/run/netns/block" });
    expect(result.ips?.[0]?.address).toBe("10.1.0.2/24");
    expect(await locks.holder("block")).toBeUndefined();
    expect(consistency(cacheDir, "block")).toEqual({ cached: true, reserved: true });
    await runtime.del(list, { containerId: "block", ifName: "eth0", netns: "" });
    expect(consistency(cacheDir, "block")).toEqual({ cached: false, reserved: false });
  }, 50_000);
});

describe("FileLocks", () => {
  const me = currentLockOwner();
  const dir = join(tmp.dir, "unit");
  const plant = (name: string, owner: Partial<LockOwner> | string): void => {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `${name}.lock`), typeof owner === "string" ? owner : JSON.stringify({ ...me, ...owner }));
  };

  it("knows this process from /proc: pid, start time, boot id and pid namespace", () => {
    expect(me.pid).toBe(process.pid);
    expect(me.start).toMatch(/^\d+$/);
    expect(me.boot).toMatch(/^[0-9a-f-]{36}$/);
    expect(me.pidns).toMatch(/^pid:\[\d+\]$/);
    expect(lockOwnerAlive(me)).toBe(true);
  });

  it.each([
    ["a pid reused by another process (this one, other start time)", { start: "1" }],
    ["an owner from another boot", { boot: "00000000-0000-0000-0000-000000000000" }],
    ["a pid that does not exist", { pid: 2 ** 22 + 1 }],
  ])("takes over a lock held by %s", async (_label, owner) => {
    plant("dead", owner);
    expect(lockOwnerAlive({ ...me, ...owner })).toBe(false);
    const locks = new FileLocks(dir, { timeoutMs: 60_000 });
    expect(await locks.run("dead", async () => (await locks.holder("dead"))?.pid)).toBe(process.pid);
    expect(existsSync(locks.path("dead"))).toBe(false);
  });

  it("waits for a live holder and, after timeoutMs, fails with 11 naming it", async () => {
    plant("live", {});
    const locks = new FileLocks(dir, { timeoutMs: 150 });
    const err = await locks.run("live", async () => "ran").catch((e: unknown) => e);
    expect(err).toMatchObject({ code: CniCode.TryAgainLater, msg: expect.stringContaining(`held by process ${process.pid}`) });
    expect((await locks.holder("live"))?.pid).toBe(process.pid);
  });

  it("an owner in another pid namespace counts as alive until foreignStaleMs", async () => {
    plant("foreign", { pidns: "pid:[1]", pid: 2 ** 22 + 1 });
    expect(lockOwnerAlive({ ...me, pidns: "pid:[1]" })).toBeUndefined();
    expect(await new FileLocks(dir, { timeoutMs: 100 }).run("foreign", async () => "ran").catch((e: unknown) => e)).toMatchObject({ code: 11 });
    expect(await new FileLocks(dir, { timeoutMs: 60_000, foreignStaleMs: 0 }).run("foreign", async () => "ran")).toBe("ran");
  });

  it("a file that is not an owner record is taken over once older than unreadableStaleMs, and not before", async () => {
    plant("junk", "not json");
    expect(await new FileLocks(dir, { timeoutMs: 100 }).run("junk", async () => "ran").catch((e: unknown) => e)).toMatchObject({ code: 11 });
    const old = new Date(Date.now() - 60_000);
    utimesSync(join(dir, "junk.lock"), old, old);
    expect(await new FileLocks(dir, { timeoutMs: 60_000, unreadableStaleMs: 30_000 }).run("junk", async () => "ran")).toBe("ran");
  });

  it("serializes holders of one name and lets other names run at once", async () => {
    const a = new FileLocks(dir);
    const b = new FileLocks(dir);
    let inside = 0;
    let most = 0;
    const hold = (locks: FileLocks, name: string) =>
      locks.run(name, async () => {
        inside++;
        most = Math.max(most, inside);
        await new Promise((r) => setImmediate(r));
        inside--;
      });
    await Promise.all([hold(a, "one"), hold(b, "one"), hold(a, "one"), hold(b, "one")]);
    expect(most).toBe(1);
    let both = false;
    await a.run("x", () => b.run("y", async () => (both = true)));
    expect(both).toBe(true);
  });

  it("keeps apart many FileLocks of one process taking one name at once (each attempt stages its own file)", async () => {
    // Fresh instances all make their first attempt together: with a staging name that repeated
    // between instances, one removed the file another was about to link (ENOENT).
    for (let round = 0; round < 20; round++) {
      let inside = 0;
      let most = 0;
      const holders = Array.from({ length: 8 }, () => new FileLocks(dir, { pollMs: 1, maxPollMs: 5 }));
      await Promise.all(
        holders.map((locks) =>
          locks.run(`many${round}`, async () => {
            inside++;
            most = Math.max(most, inside);
            await new Promise((r) => setImmediate(r));
            inside--;
          }),
        ),
      );
      expect(most, `round ${round}`).toBe(1);
    }
    expect(readdirSync(dir).filter((f) => f.startsWith("many"))).toEqual([]);
  });

  it("refuses a name that is not a container id", async () => {
    await expect(new FileLocks(dir).run("../etc", async () => "ran")).rejects.toMatchObject({ code: 7 });
  });
});
