/**
 * Process helpers every package that starts processes needs (the lab, the kernel tests of linux,
 * netpol and weave): one copy here.
 */
import { readFileSync } from "node:fs";

/** Whether process `pid` exists and is not a zombie (whatever it runs). Linux (/proc). */
export function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\d+ \(.*\) Z /s.test(stat);
  } catch {
    return false;
  }
}
