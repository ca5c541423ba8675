/**
 * The sleeve on a real kernel: `SleeveRelay` (UDP 6783 between peers, MAC learning, flooding,
 * sealing with `sleeveSession(keys)`, counters for STATUS) over a `FrameDevice` — `TapDevice`, the
 * native TAP helper (native/weave-tap.c, `buildWeaveTap()`) — and the packet codec and MAC table
 * they use, and the relay's own key exchange (`handshake.ts`) for a sleeve without a mesh. Each file's header documents its part.
 */
export * from "./packet.ts";
export * from "./mac-table.ts";
export * from "./tap.ts";
export * from "./relay.ts";
export * from "./handshake.ts";
