/**
 * Canal's fixtures (`@cnikit/canal/fixtures`), in the shape every backend's fixtures share
 * (`BackendFixtures` of @cnikit/core). Canal's config is flannel's net-conf.json, unchanged, so its
 * modes, its invalid-config table and its anchor configs are flannel's: the same objects,
 * re-exported, never copied (a rule flannel adds or changes is Canal's at once).
 */
import { conformanceTables } from "@cnikit/core";
import type { BackendFixtures } from "@cnikit/core";
import { flannelFixtures } from "@cnikit/flannel/fixtures";

/** flannel's modes, invalid configs and anchor configs (the same arrays). */
export const canalFixtures: BackendFixtures<Record<string, unknown>> = flannelFixtures;

/** Canal's section-C tables under the export name the conformance CLI looks for (`conformance`). */
export const conformance = conformanceTables(canalFixtures);
