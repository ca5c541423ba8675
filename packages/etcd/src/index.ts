export { EtcdDatastore, type EtcdDatastoreOptions } from "./datastore.ts";
export { OutcomeUnknownError } from "./errors.ts";
export { keepLeaseAlive, type KeepLeaseAliveOptions, type LeaseKeeper } from "./keepalive.ts";
export { watchWithResync, type ResyncEvent, type ResyncSnapshot, type WatchWithResyncOptions } from "./resync.ts";
