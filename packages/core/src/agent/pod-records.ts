/**
 * `LocalPodRecords`: a node agent's pod reservations in its node-local store (`ctx.local`), one
 * JSON record per attachment under `<prefix><containerId>/<ifName>` — what every backend keeps so
 * that a restarted agent still knows its pods' addresses, and what GC must see. Writes that fail are
 * `TryAgainError` (11) with the component's name, so the runtime retries or the runtime reports it;
 * unreadable records are dropped with a warning when loaded.
 */
import type { Logger, PodRef } from "../backend.ts";
import type { Datastore } from "../datastore.ts";
import { podKey } from "../dataplane.ts";
import { TryAgainError } from "../errors.ts";

/** The folder pod records live in when no other is given. */
export const LOCAL_POD_PREFIX = "/pods/";

export interface LocalPodRecordsOptions<R> {
  local: Datastore;
  log: Logger;
  /** Name in messages: `[<component>] ...`. */
  component: string;
  /** Folder of the records (default `LOCAL_POD_PREFIX`), ending in `/`. */
  prefix?: string;
  /** Reads one record (JSON already parsed); undefined when it is not one (it is then dropped). */
  decode?: (value: unknown) => R | undefined;
}

export class LocalPodRecords<R extends PodRef> {
  private readonly local: Datastore;
  private readonly log: Logger;
  private readonly component: string;
  readonly prefix: string;
  private readonly decode: (value: unknown) => R | undefined;

  constructor(options: LocalPodRecordsOptions<R>) {
    this.local = options.local;
    this.log = options.log;
    this.component = options.component;
    this.prefix = options.prefix ?? LOCAL_POD_PREFIX;
    this.decode =
      options.decode ??
      ((v) => {
        const r = v as Partial<PodRef> | null;
        return r !== null && typeof r === "object" && typeof r.containerId === "string" && typeof r.ifName === "string" ? (v as R) : undefined;
      });
  }

  /** The store key of an attachment's record. */
  key(ref: PodRef): string {
    return `${this.prefix}${ref.containerId}/${ref.ifName}`;
  }

  /** Writes the record; `TryAgainError` naming `what` (e.g. the address) when the store refuses. */
  async put(record: R, what = "the reservation"): Promise<void> {
    try {
      await this.local.put(this.key(record), JSON.stringify(record));
    } catch (err) {
      throw err instanceof TryAgainError ? err : new TryAgainError(`[${this.component}] could not record ${what} for ${podKey(record)}; try again`, { cause: err });
    }
  }

  /** Deletes the record (absent is fine); `TryAgainError` when the store refuses. */
  async remove(ref: PodRef): Promise<void> {
    try {
      await this.local.delete(this.key(ref));
    } catch (err) {
      throw err instanceof TryAgainError ? err : new TryAgainError(`[${this.component}] could not record the release of ${podKey(ref)}; try again`, { cause: err });
    }
  }

  async has(ref: PodRef): Promise<boolean> {
    return (await this.local.get(this.key(ref))) !== undefined;
  }

  /** Every readable record; an unreadable one is deleted with a warning naming its key. */
  async load(): Promise<R[]> {
    const out: R[] = [];
    for (const kv of (await this.local.list(this.prefix)).items) {
      let record: R | undefined;
      try {
        record = this.decode(JSON.parse(kv.value) as unknown);
      } catch {
        record = undefined;
      }
      if (record === undefined) {
        this.log.warn(`[${this.component}] dropping unreadable reservation ${kv.key}`);
        await this.local.delete(kv.key);
        continue;
      }
      out.push(record);
    }
    return out;
  }

  /** The attachments the records name (what GC must see beside the runtime's own). */
  async refs(): Promise<PodRef[]> {
    const refs: PodRef[] = [];
    for (const kv of (await this.local.list(this.prefix)).items) {
      const [containerId, ifName] = kv.key.slice(this.prefix.length).split("/");
      if (containerId && ifName) refs.push({ containerId, ifName });
    }
    return refs;
  }
}
