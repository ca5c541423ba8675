/**
 * Writes (default) or checks (`--check`) the npm metadata of every published package:
 * `repository` (with `directory`), `homepage`, `bugs` — all derived from the root package.json's
 * `repository.url` —, `keywords`, `engines` (node >=20), `license`, `files` (DESIGN.md when the
 * package has one, CHANGELOG.md), the pack hooks (scripts/release/prepack.mjs: LICENSE copy, no
 * source maps) and `publishConfig` (`access: public`, and `exports` without the `source`
 * condition, so what is published points at dist/ only).
 *
 * Usage: tsx scripts/release/package-meta.ts [--check]
 * Each package.json is re-read right before it is written and written at once (other people may
 * edit its dependencies at the same time); key order is kept, new keys go after `license`.
 */
import { readFileSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { REPO_ROOT, projectRepository, publishedExports, publishedPackages, type PackageJson } from "./packages.ts";

const COMMON_KEYWORDS = ["cnikit", "kubernetes", "cni", "pod-network"];

/** Per package, what a person searching npm would type. */
const KEYWORDS: Record<string, string[]> = {
  "@cnikit/core": ["backend-contract", "ipam", "datastore", "cidr"],
  "@cnikit/sim": ["simulator", "network-simulation", "testing"],
  "@cnikit/conformance": ["conformance", "test-suite", "vitest", "cni-plugin"],
  "@cnikit/reference": ["backend", "static-routes"],
  "@cnikit/flannel": ["backend", "flannel", "vxlan", "host-gw", "overlay"],
  "@cnikit/calico": ["backend", "calico", "bgp", "ipip", "vxlan", "ipam", "networkpolicy"],
  "@cnikit/canal": ["backend", "canal", "flannel", "networkpolicy"],
  "@cnikit/weave": ["backend", "weave", "gossip", "crdt", "vxlan", "overlay", "encryption"],
  "@cnikit/azure": ["backend", "azure", "azure-cni", "vnet", "ipam"],
  "@cnikit/netpol": ["networkpolicy", "network-policy", "nftables", "firewall"],
  "@cnikit/backends": ["backend", "registry"],
  "@cnikit/linux": ["linux", "netlink", "iproute2", "nftables", "network-namespace"],
  "@cnikit/lab": ["linux", "network-namespace", "lab", "testing", "etcd"],
  "@cnikit/cni": ["cni-plugin", "container-networking", "daemon", "libcni"],
  "@cnikit/etcd": ["etcd", "etcd3", "datastore", "watch"],
  "@cnikit/bench": ["benchmark", "convergence", "routing", "cli"],
  "bgp-utils-free": ["bgp", "bgp-4", "routing", "route-reflector", "rfc4271"],
};

const PACK_HOOK = "node ../../scripts/release/prepack.mjs";

function desired(dir: string, current: PackageJson, repo: { gitUrl: string; webUrl: string }): Record<string, unknown> {
  const depth = dir.split("/").length;
  const hook = depth === 1 ? PACK_HOOK.replace("../../", "../") : PACK_HOOK;
  const extra = KEYWORDS[current.name];
  if (extra === undefined) throw new Error(`${dir}/package.json: name: ${current.name} has no keywords in scripts/release/package-meta.ts`);
  const bgp = current.name === "bgp-utils-free";
  const keywords = [...new Set([...(bgp ? [] : COMMON_KEYWORDS), ...extra])];
  const files = [...(current.files ?? ["dist"])];
  if (existsSync(join(REPO_ROOT, dir, "DESIGN.md")) && !files.includes("DESIGN.md")) files.push("DESIGN.md");
  // Written by `changeset version`; pnpm pack does not add it by itself.
  if (!files.includes("CHANGELOG.md")) files.push("CHANGELOG.md");
  const scripts = { ...(current["scripts"] as Record<string, string> | undefined), prepack: hook, postpack: `${hook} --after` };
  const out: Record<string, unknown> = {
    license: "Apache-2.0",
    repository: { type: "git", url: repo.gitUrl, directory: dir },
    homepage: `${repo.webUrl}/tree/main/${dir}#readme`,
    bugs: { url: `${repo.webUrl}/issues` },
    keywords,
    engines: { node: ">=20" },
    files,
    scripts,
    publishConfig: { access: "public", ...(current.exports ? { exports: publishedExports(current.exports) } : {}) },
  };
  return out;
}

/** `current` with `want` applied: changed keys in place, new keys after `license`. */
function apply(current: PackageJson, want: Record<string, unknown>): PackageJson {
  const out: Record<string, unknown> = {};
  const pending = Object.keys(want).filter((k) => !(k in current));
  for (const [key, value] of Object.entries(current)) {
    out[key] = key in want ? want[key] : value;
    if (key === "license") for (const k of pending) out[k] = want[k];
  }
  for (const k of pending) if (!(k in out)) out[k] = want[k];
  return out as PackageJson;
}

const check = process.argv.includes("--check");
const repo = projectRepository();
const stale: string[] = [];
for (const { dir } of publishedPackages()) {
  const file = join(REPO_ROOT, dir, "package.json");
  const text = readFileSync(file, "utf8");
  const current = JSON.parse(text) as PackageJson;
  const want = desired(dir, current, repo);
  const wrong = Object.keys(want).filter((k) => !isDeepStrictEqual(current[k], want[k]));
  if (wrong.length === 0) continue;
  if (check) {
    stale.push(`${dir}/package.json: ${wrong.join(", ")}`);
    continue;
  }
  writeFileSync(file, `${JSON.stringify(apply(current, want), null, 2)}\n`);
  console.log(`${dir}/package.json: wrote ${wrong.join(", ")}`);
}
if (stale.length > 0) {
  console.error(`package metadata out of date (run: pnpm exec tsx scripts/release/package-meta.ts):\n  ${stale.join("\n  ")}`);
  process.exit(1);
}
if (check) console.log("package metadata: every published package is up to date");
