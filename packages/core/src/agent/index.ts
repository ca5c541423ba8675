export * from "./runtime.ts";
export * from "./serial.ts";
export * from "./publisher.ts";
export * from "./informer.ts";
export * from "./lease-keeper.ts";
export * from "./plan-input.ts";
export * from "./pod-records.ts";
