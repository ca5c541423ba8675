import { spawn } from "node:child_process";
import { afterAll, describe, expect, it } from "vitest";
import { cmdlineOf, findProcessesByMarker, pidAlive, processMatches, stopProcesses } from "../src/system.ts";

const started: number[] = [];
afterAll(() => {
  for (const pid of started) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
});

function sleeper(marker: string): Promise<number> {
  const child = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)", marker], { stdio: "ignore" });
  started.push(child.pid!);
  return new Promise((resolve) => setTimeout(() => resolve(child.pid!), 200));
}

describe("process helpers", () => {
  it("signal a recorded PID only while its command line still carries the marker", async () => {
    const marker = `/run/cnikit-lab/unit-${process.pid}/marker`;
    const pid = await sleeper(marker);
    expect(cmdlineOf(pid)).toContain(marker);
    expect(processMatches(pid, marker)).toBe(true);
    expect(processMatches(pid, `${marker}x`)).toBe(false);
    expect(findProcessesByMarker(marker)).toEqual([pid]);
    // A PID recorded with another marker (reused by an unrelated process) is left alone.
    expect(await stopProcesses([{ pid, marker: "/run/cnikit-lab/other/marker" }], { graceMs: 100 })).toEqual([]);
    expect(pidAlive(pid)).toBe(true);
    expect(await stopProcesses([{ pid, marker }], { graceMs: 2000 })).toEqual([pid]);
    expect(processMatches(pid, marker)).toBe(false);
    expect(findProcessesByMarker(marker)).toEqual([]);
    // Twice is fine.
    expect(await stopProcesses([{ pid, marker }])).toEqual([]);
  });
});
