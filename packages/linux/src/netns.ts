/**
 * Named network namespaces (`ip netns`): create, delete, list. Shared by the renderer's feature
 * probe, the lab and the tests.
 */
import { existsSync } from "node:fs";
import { ConfigError } from "@cnikit/core";
import { CommandError, NETNS_RUN_DIR, runProcess, type SpawnCounter } from "./exec.ts";

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

/** @throws ConfigError when `name` is not a usable `ip netns` name. */
export function checkNetnsName(name: unknown, field = "netns"): string {
  if (typeof name !== "string" || !NAME_RE.test(name) || name === "." || name === "..") {
    throw new ConfigError({ component: "linux", field, rule: "must be a namespace name of 1-63 letters, digits, '_', '.', '-' starting with a letter or digit", value: name });
  }
  return name;
}

/** Whether a named namespace exists. */
export function netnsExists(name: string): boolean {
  return existsSync(`${NETNS_RUN_DIR}/${checkNetnsName(name)}`);
}

/** Options of `createNetns`. */
export interface CreateNetnsOptions {
  /** Bring `lo` up in the new namespace (default true: local sockets need it). */
  loopbackUp?: boolean;
  counter?: SpawnCounter;
}

/**
 * Creates the named namespace `name` (`ip netns add`) and brings its loopback up. Returns its path.
 * Not idempotent on purpose: a namespace of that name that already exists is someone else's.
 * @throws ConfigError for a bad name; CommandError when it exists or cannot be created (the
 *   namespace is removed again when bringing lo up fails).
 */
export async function createNetns(name: string, options: CreateNetnsOptions = {}): Promise<string> {
  checkNetnsName(name);
  const argv = ["ip", "netns", "add", name];
  const r = await runProcess(argv, undefined, options.counter);
  if (r.code !== 0) throw new CommandError({ argv, netns: undefined, stderr: r.stderr, exitCode: r.code });
  if (options.loopbackUp !== false) {
    const up = ["ip", "-n", name, "link", "set", "lo", "up"];
    const u = await runProcess(up, undefined, options.counter);
    if (u.code !== 0) {
      await runProcess(["ip", "netns", "delete", name]);
      throw new CommandError({ argv: up, netns: name, stderr: u.stderr, exitCode: u.code });
    }
  }
  return `${NETNS_RUN_DIR}/${name}`;
}

/**
 * Deletes the named namespace `name`. Idempotent: a namespace that does not exist is fine.
 * Interfaces inside it go with it (a veth's peer in another namespace too).
 * @throws ConfigError for a bad name; CommandError when it exists and cannot be deleted.
 */
export async function deleteNetns(name: string, counter?: SpawnCounter): Promise<void> {
  checkNetnsName(name);
  if (!existsSync(`${NETNS_RUN_DIR}/${name}`)) return;
  const argv = ["ip", "netns", "delete", name];
  const r = await runProcess(argv, undefined, counter);
  if (r.code !== 0 && existsSync(`${NETNS_RUN_DIR}/${name}`)) throw new CommandError({ argv, netns: undefined, stderr: r.stderr, exitCode: r.code });
}

/** Names of the named namespaces (`ip netns list`), sorted. */
export async function listNetns(): Promise<string[]> {
  const r = await runProcess(["ip", "netns", "list"]);
  if (r.code !== 0) throw new CommandError({ argv: ["ip", "netns", "list"], netns: undefined, stderr: r.stderr, exitCode: r.code });
  return r.stdout
    .split("\n")
    .map((l) => l.split(" ")[0] ?? "")
    .filter((n) => n !== "")
    .sort();
}
