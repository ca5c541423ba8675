export { AZURE } from "./config.ts";
export type { AzureConfig, AzureMode, PodIpAllocationMode, ScalerSettings } from "./config.ts";
export * from "./records.ts";
