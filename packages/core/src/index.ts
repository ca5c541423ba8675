export * from "./errors.ts";
export * from "./clock.ts";
export * from "./dataplane.ts";
export * from "./datastore.ts";
export * from "./peers.ts";
export * from "./backend.ts";
export * from "./ip/prefix.ts";
