export { EtcdDatastore, type EtcdDatastoreOptions } from "./datastore.ts";
export { OutcomeUnknownError } from "./errors.ts";
