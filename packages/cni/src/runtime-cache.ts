/**
 * The runtime's result cache, as libcni keeps one: after a successful ADD the final result and
 * what the attachment was made with (netns, CNI_ARGS, capability arguments) are written to
 * `<cacheDir>/results/<network>:<containerId>:<ifName>`; DEL and CHECK read it back as
 * `prevResult`; DEL removes it; GC lists it to find stale attachments. `:` separates the parts
 * because none of the three may contain one (libcni's `-` is ambiguous: network and container ids
 * may contain dashes). Files are written to a temporary name and renamed, mode 0600.
 */
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { IoError } from "@cnikit/core";

/** The cache file's `kind`, so a file someone else put in the directory is never taken for ours. */
export const CACHE_KIND = "cnikitCacheV1";

/** One cached attachment. */
export interface CachedAttachment {
  kind: typeof CACHE_KIND;
  networkName: string;
  containerId: string;
  ifName: string;
  netns: string;
  cniArgs: [string, string][];
  capabilityArgs: Record<string, unknown>;
  /** The version the list ran at when the result was made. */
  cniVersion: string;
  /** The final result of the ADD, in `cniVersion`'s shape. */
  result: Record<string, unknown>;
  /** The conflist the ADD ran (as given), for inspection and for GC of a list that changed. */
  config: Record<string, unknown>;
  /** When it was written (ISO 8601). */
  created: string;
}

/** The key of one attachment. */
export interface AttachmentKey {
  networkName: string;
  containerId: string;
  ifName: string;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isCached(v: unknown): v is CachedAttachment {
  return (
    isObject(v) &&
    v["kind"] === CACHE_KIND &&
    typeof v["networkName"] === "string" &&
    typeof v["containerId"] === "string" &&
    typeof v["ifName"] === "string" &&
    typeof v["netns"] === "string" &&
    Array.isArray(v["cniArgs"]) &&
    isObject(v["capabilityArgs"]) &&
    typeof v["cniVersion"] === "string" &&
    isObject(v["result"])
  );
}

/**
 * The on-disk result cache of one runtime. Not locked itself: `CniRuntime` holds the container's
 * mutex and its lock file (`FileLocks` under `<cacheDir>/locks`) around every read-modify-write.
 */
export class ResultCache {
  readonly dir: string;

  constructor(cacheDir: string) {
    this.dir = join(cacheDir, "results");
  }

  /** The file that holds one attachment's result. */
  path(key: AttachmentKey): string {
    return join(this.dir, `${key.networkName}:${key.containerId}:${key.ifName}`);
  }

  /** Writes (replaces) one attachment atomically. Throws `IoError` (5) when the disk refuses. */
  async write(entry: CachedAttachment): Promise<void> {
    const file = this.path(entry);
    const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      await writeFile(tmp, `${JSON.stringify(entry)}\n`, { mode: 0o600 });
      await rename(tmp, file);
    } catch (err) {
      await rm(tmp, { force: true }).catch(() => undefined);
      throw new IoError(`[cni-runtime] could not write the result cache ${file}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }

  /**
   * Reads one attachment: undefined when there is no file; a file that is not a cache entry of
   * ours (corrupt, foreign) is reported as `{ corrupt: reason }` so DEL can drop it and go on.
   */
  async read(key: AttachmentKey): Promise<CachedAttachment | undefined | { corrupt: string }> {
    let text: string;
    try {
      text = await readFile(this.path(key), "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      return { corrupt: err instanceof Error ? err.message : String(err) };
    }
    try {
      const parsed: unknown = JSON.parse(text);
      return isCached(parsed) ? parsed : { corrupt: `not a ${CACHE_KIND} entry` };
    } catch (err) {
      return { corrupt: `not JSON: ${err instanceof Error ? err.message : String(err)}` };
    }
  }

  /** Removes one attachment; removing one that is not there is fine. Idempotent. */
  async remove(key: AttachmentKey): Promise<void> {
    await rm(this.path(key), { force: true });
  }

  /** Every readable cache entry, optionally only those of one network. Unreadable files are skipped. */
  async list(networkName?: string): Promise<CachedAttachment[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw new IoError(`[cni-runtime] could not list the result cache ${this.dir}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    const out: CachedAttachment[] = [];
    for (const name of names.sort()) {
      if (name.includes(".tmp-")) continue;
      const parts = name.split(":");
      if (parts.length !== 3) continue;
      if (networkName !== undefined && parts[0] !== networkName) continue;
      const entry = await this.read({ networkName: parts[0]!, containerId: parts[1]!, ifName: parts[2]! });
      if (entry !== undefined && !("corrupt" in entry)) out.push(entry);
    }
    return out;
  }
}
