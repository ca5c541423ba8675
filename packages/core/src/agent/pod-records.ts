/**
 * `LocalPodRecords`: a node agent's pod reservations in its node-local store (`ctx.local`), one
 * JSON record per attachment under `<prefix><containerId>/<ifName>` — what every backend keeps so
 * that a restarted agent still knows its pods' addresses, and what GC must see. Writes that fail are
 * `TryAgainError` (11) with the component's name, so the runtime retries or the runtime reports it;
 * unreadable records are dropped with a warning when loaded.
 */
import type { Logger, PodAttachment, PodPort, PodRef } from "../backend.ts";
import type { Datastore } from "../datastore.ts";
import { podKey } from "../dataplane.ts";
import { TryAgainError } from "../errors.ts";

/** What a pod record keeps of the ADD: identity, namespace path and the Kubernetes metadata. */
export interface AttachmentFields {
  containerId: string;
  ifName: string;
  netns: string;
  namespace?: string;
  podName?: string;
  labels?: Record<string, string>;
  ports?: PodPort[];
}

/**
 * A pod record for `pod`: its identity, then `own` (the backend's fields, e.g. the address), then
 * the netns and the optional metadata only when set (labels and ports copied, never shared with the
 * caller's objects). Pure.
 */
export function attachmentRecord<E extends object>(pod: PodAttachment, own: E): Pick<AttachmentFields, "containerId" | "ifName"> & E & Omit<AttachmentFields, "containerId" | "ifName"> {
  const record = { containerId: pod.containerId, ifName: pod.ifName, ...own, netns: pod.netns } as Pick<AttachmentFields, "containerId" | "ifName"> &
    E &
    Omit<AttachmentFields, "containerId" | "ifName">;
  if (pod.namespace !== undefined) record.namespace = pod.namespace;
  if (pod.podName !== undefined) record.podName = pod.podName;
  if (pod.labels !== undefined) record.labels = { ...pod.labels };
  if (pod.ports !== undefined) record.ports = pod.ports.map((p) => ({ ...p }));
  return record;
}

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
