/**
 * What the kernel tests that run Debian's reference plugins share: commands, tool checks naming
 * their Debian package, the node's NAT rules, a pod's links, and the IPv4-only iptables directory
 * (Debian's portmap 1.1.1 CHECK looks for IPv4 rules in ip6tables too whenever ip6tables works,
 * containernetworking/plugins#819, so the plugins get a PATH as on an IPv4-only host).
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, symlinkSync } from "node:fs";
import { join } from "node:path";

/** Runs a command, returning its stdout; throws with its stderr on failure. */
export function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** Fails (never skips) when `path` is missing, naming the Debian package that provides it. */
export function requireTool(path: string, pkg: string): void {
  if (!existsSync(path)) throw new Error(`${path} is missing: install the Debian package ${pkg}`);
}

/** The `-A` lines of the nat table in namespace `ns`. */
export function natRules(ns: string): string[] {
  return run("ip", ["netns", "exec", ns, "iptables-save", "-t", "nat"])
    .split("\n")
    .filter((l) => l.startsWith("-A "));
}

/** A namespace's links with their addresses (`ip -j addr show`). */
export function nsLinks(ns: string): { ifname: string; address: string; addr_info?: { family: string; local: string; prefixlen: number }[] }[] {
  return JSON.parse(run("ip", ["-j", "-n", ns, "addr", "show"])) as ReturnType<typeof nsLinks>;
}

/** Makes `<dir>/v4only-bin` holding only the IPv4 iptables binaries; returns its path. */
export function ipv4OnlyIptables(dir: string): string {
  const v4only = join(dir, "v4only-bin");
  mkdirSync(v4only);
  for (const b of ["iptables", "iptables-save", "iptables-restore"]) symlinkSync(`/usr/sbin/${b}`, join(v4only, b));
  return v4only;
}
