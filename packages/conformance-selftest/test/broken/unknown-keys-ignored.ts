/**
 * Broken (flannel): unknown top-level keys of net-conf.json are dropped silently before parsing (as
 * upstream flannel's JSON decoding does), so a typo such as `SubnetLength` for `SubnetLen` is
 * accepted and the default used instead of the value the user meant.
 */
import type { Backend } from "@cnikit/core";
import { NET_CONF_KEYS, flannel } from "@cnikit/flannel";
import type { FlannelConfig } from "@cnikit/flannel";
import { wrapBackend } from "./wrap.ts";

const known = new Set<string>(NET_CONF_KEYS.map((k) => k.toLowerCase()));

export const unknownKeysIgnored: Backend<FlannelConfig> = wrapBackend(flannel, "broken-flannel-unknown-keys-ignored", {
  parseConfig: (input) => {
    if (input === null || typeof input !== "object" || Array.isArray(input)) return flannel.parseConfig(input);
    const kept = Object.entries(input as Record<string, unknown>).filter(([k]) => known.has(k.toLowerCase()));
    return flannel.parseConfig(Object.fromEntries(kept));
  },
});
