/**
 * Weave's sleeve on a real kernel: the backend's `UserspaceDatapath` (core backend.ts), so the
 * Linux renderer can render the plan's `sleeve` link (`sleeve-6783`, a port of bridge `weave`).
 *
 *   const dp = weave.userspaceDatapath!({ config, node, log });   // cnikitd does this once
 *   await dp.ensure(link);          // TAP `link.name` (the helper) + a SleeveRelay on UDP link.port
 *   dp.setFdb(link.name, fdb);      // peers = the distinct `dst` of the link's FDB entries
 *   dp.status();                    // ["sleeve-6783 (pid 123): 1 peer, …; sessions 1/1 …"]
 *   await dp.remove(link.name); await dp.stop();
 *
 * Choices, stated:
 *  - Names: a relay (and each peer) is named by its underlay IPv4 address (`ipv4Underlay(node)`),
 *    which both ends know from the FDB alone; the header carries it as 4 raw bytes (`addressNames`),
 *    so an encrypted packet with a pod-MTU frame (underlay − 82) fits the underlay's MTU.
 *  - Encryption (`link.encrypted`, from WEAVE_PASSWORD): the relay agrees keys per peer with its own
 *    UDP handshake mixed with the config's password (sleeve/handshake.ts) — no mesh needed; frames to
 *    a peer without keys yet are dropped and counted ("no-session"), never sent in plaintext.
 *  - Namespace: the TAP helper and the UDP socket live in the namespace of the process this runs in
 *    (cnikitd in the node's namespace: the lab starts it under `ip netns exec`), so the renderer
 *    must render into that same namespace (cnikitd's `renderer` without `netns`).
 *  - `ensure` keeps a running relay whose port and encryption match the link; any other change, or
 *    a helper that exited, starts a new TAP and relay (resolves true: the renderer configures the
 *    new device). The FDB is kept per link, so a relay started again gets its peers back.
 */
import { ConfigError, type FdbEntry, type Link, type Logger, type UserspaceDatapath, type UserspaceDatapathContext } from "@cnikit/core";
import type { WeaveConfig } from "./config.ts";
import { ipv4Underlay } from "./plan.ts";
import { formatSleeveStats, SleeveRelay, type SleeveRelayOptions } from "./sleeve/relay.ts";
import { TapDevice, type FrameDevice } from "./sleeve/tap.ts";

/** Options for tests: another helper binary, another device. */
export interface WeaveDatapathOptions {
  /** Makes the device for a TAP name (default: `new TapDevice({ ifname, helper })`). */
  device?: (ifname: string) => FrameDevice;
  /** The TAP helper (default `WEAVE_TAP_NATIVE`). */
  helper?: string;
  /** Extra relay options (tests: `handshakeIntervalMs`). */
  relay?: Partial<Pick<SleeveRelayOptions, "handshakeIntervalMs" | "clock">>;
}

interface Running {
  relay: SleeveRelay;
  port: number;
  encrypted: boolean;
}

const C = "weave";

/** The sleeve as a userspace datapath for the Linux renderer. */
export class WeaveSleeveDatapath implements UserspaceDatapath {
  readonly kinds: readonly Link["kind"][] = ["sleeve"];
  private readonly config: WeaveConfig;
  private readonly self: string;
  private readonly pathMtu: number;
  private readonly log: Logger;
  private readonly options: WeaveDatapathOptions;
  private readonly running = new Map<string, Running>();
  private readonly fdb = new Map<string, readonly FdbEntry[]>();
  private stopped = false;

  /** @throws ConfigError when the node has no IPv4 underlay address. */
  constructor(ctx: UserspaceDatapathContext<WeaveConfig>, options: WeaveDatapathOptions = {}) {
    this.config = ctx.config;
    const underlay = ipv4Underlay(ctx.node);
    this.self = underlay.address;
    this.pathMtu = underlay.mtu ?? 1500;
    this.log = ctx.log;
    this.options = options;
  }

  async ensure(link: Link): Promise<boolean> {
    if (this.stopped) throw new ConfigError({ component: C, field: "sleeve", rule: "the userspace datapath was stopped" });
    if (link.kind !== "sleeve") throw new ConfigError({ component: C, field: `links(${link.name}).kind`, rule: "must be sleeve: the only kind weave runs in userspace", value: link.kind });
    if (link.encrypted && this.config.password === undefined) {
      throw new ConfigError({ component: C, field: `links(${link.name}).encrypted`, rule: "needs WEAVE_PASSWORD in the config: the sleeve's keys are mixed with it" });
    }
    const current = this.running.get(link.name);
    if (current && current.port === link.port && current.encrypted === link.encrypted && current.relay.stats().device.exited === undefined) return false;
    if (current) {
      this.running.delete(link.name);
      await current.relay.stop();
    }
    const device = this.options.device ? this.options.device(link.name) : new TapDevice({ ifname: link.name, ...(this.options.helper !== undefined ? { helper: this.options.helper } : {}) });
    const relay = new SleeveRelay({
      name: this.self,
      address: this.self,
      port: link.port,
      device,
      encrypted: link.encrypted,
      ...(link.encrypted ? { password: this.config.password! } : {}),
      addressNames: true,
      pathMtu: this.pathMtu,
      log: this.log,
      ...this.options.relay,
    });
    await relay.start();
    this.running.set(link.name, { relay, port: link.port, encrypted: link.encrypted });
    this.feed(link.name);
    this.log.info("sleeve device started", { link: link.name, port: link.port, encrypted: link.encrypted, pid: device.pid });
    return true;
  }

  setFdb(link: string, entries: readonly FdbEntry[]): void {
    this.fdb.set(link, [...entries]);
    this.feed(link);
  }

  has(link: string): boolean {
    return this.running.has(link);
  }

  async remove(link: string): Promise<void> {
    this.fdb.delete(link);
    const r = this.running.get(link);
    if (!r) return;
    this.running.delete(link);
    await r.relay.stop();
    this.log.info("sleeve device stopped", { link });
  }

  status(): string[] {
    return [...this.running.values()].map((r) => formatSleeveStats(r.relay.stats()));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const name of [...this.running.keys()]) await this.remove(name);
  }

  /** Gives the relay of `link` its peers: the distinct FDB destinations other than this node. */
  private feed(link: string): void {
    const r = this.running.get(link);
    if (!r) return;
    const peers = [...new Set((this.fdb.get(link) ?? []).map((e) => e.dst))].filter((a) => a !== this.self).sort();
    r.relay.setPeers(peers.map((address) => ({ name: address, address, port: r.port })));
  }
}

/** `Backend.userspaceDatapath` of weave. */
export function weaveUserspaceDatapath(ctx: UserspaceDatapathContext<WeaveConfig>): UserspaceDatapath {
  return new WeaveSleeveDatapath(ctx);
}
