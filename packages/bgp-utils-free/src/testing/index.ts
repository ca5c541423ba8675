/**
 * bgp-utils-free/testing: real BGP daemons to test or measure a speaker against — BIRD 2 (Debian
 * bird2) started and stopped by its own PID, on loopback or inside a network namespace, queried
 * through birdc or its control socket — and the process helpers they share.
 */
export { Bird, BirdControl } from "./bird.ts";
export type { BirdConfig, BirdLaunch, BirdPeer, BirdRoute } from "./bird.ts";
export { Daemon, execFileAsync, removeDir, requireBinary, tempDir, waitFor } from "./daemons.ts";
