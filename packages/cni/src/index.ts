/**
 * @cnikit/cni: the CNI protocol (protocol.ts), the socket protocol between the `cnikit-cni`
 * executable and `cnikitd` (wire.ts), the daemon (daemon.ts, daemon-config.ts, daemon-main.ts),
 * the cluster-level controller process `cnikit-controller` (controller.ts, controller-main.ts)
 * and the dataplane applier interface it renders through (applier.ts).
 */
export const PACKAGE_NAME = "@cnikit/cni";
export * from "./protocol.ts";
export * from "./wire.ts";
export * from "./applier.ts";
export * from "./daemon.ts";
export * from "./daemon-config.ts";
export * from "./daemon-main.ts";
export * from "./controller.ts";
export * from "./controller-main.ts";
export * from "./paths.ts";
export * from "./runtime.ts";
