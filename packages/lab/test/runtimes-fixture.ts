/**
 * What the real-runtime tests (runtimes.integration.test.ts) build and check: the tools they need
 * (each missing one named with its Debian package), a busybox-static rootfs tarball for `podman
 * import`, a CNI directory pair (conflist + plugin dir) whose plugins are logging wrappers around
 * the real ones, podman's `containers.conf` and containerd's config under the test's own directory,
 * the calls the runtime made as read back from the wrappers' log, and a snapshot of what a runtime
 * could leave behind in the host namespace (links, nat rules, netns files, forwarding sysctls, the
 * fixed directories podman, libcni and containerd create) to compare, clean up and restore.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { cmdlineOf, onPath } from "../src/system.ts";

/** Debian's reference plugins (containernetworking-plugins). */
export const CNI_PLUGIN_DIR = "/usr/lib/cni";

/** Host sysctls that podman and containerd are known to turn on; recorded and restored. */
export const FORWARDING_SYSCTLS = ["net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"] as const;

/**
 * Directories outside the test's own that the runtimes create on first use even when given their
 * own root: libcni's result cache (podman's CNI backend and ctr), podman's blob-info cache, and
 * containerd's shim socket directory. Each is removed after the test when it did not exist before.
 */
export const RUNTIME_HOST_DIRS = ["/var/lib/cni", "/var/lib/containers", "/run/containerd"] as const;

/** Executables the runtime tests run, with the Debian package of each (util-linux and tar are essential). */
export const RUNTIME_TOOLS: readonly (readonly [bin: string, pkg: string])[] = [
  ["podman", "podman"],
  ["containerd", "containerd"],
  ["ctr", "containerd"],
  ["runc", "runc"],
  ["conmon", "conmon"],
  ["nsenter", "util-linux"],
  ["unshare", "util-linux"],
  ["iptables-save", "iptables"],
  ["tar", "tar"],
];

/** The Debian packages the runtime tests need that a minimal system lacks (scripts/system-packages.txt lists them). */
export const RUNTIME_PACKAGES: readonly string[] = ["podman", "containerd", "runc", "conmon", "iptables", "busybox-static", "containernetworking-plugins"];

/** Fails (never skips) naming what is missing and the Debian package that provides it. */
export function requireRuntimeTools(): void {
  if (process.getuid?.() !== 0) throw new Error("runtimes.integration.test.ts needs root (podman and containerd run rootful, network namespaces)");
  const missing: string[] = [];
  for (const [bin, pkg] of RUNTIME_TOOLS) if (!onPath(bin)) missing.push(`\`${bin}\` (Debian package ${pkg})`);
  for (const p of ["portmap", "loopback"]) if (!existsSync(join(CNI_PLUGIN_DIR, p))) missing.push(`${CNI_PLUGIN_DIR}/${p} (Debian package containernetworking-plugins)`);
  if (staticBusybox() === undefined) missing.push("a statically linked busybox (Debian package busybox-static)");
  // ctr reads the fixed paths /etc/cni/net.d and /opt/cni/bin: the test bind-mounts over them in a
  // private mount namespace, which needs the mount points to exist (podman ships /etc/cni/net.d).
  if (!existsSync("/etc/cni/net.d")) missing.push("/etc/cni/net.d (Debian package podman)");
  if (!existsSync("/opt")) missing.push("/opt (the FHS directory; ctr's /opt/cni/bin is mounted over it)");
  if (missing.length > 0) throw new Error(`the real-runtime tests cannot run: missing ${missing.join(", ")}`);
}

/** The statically linked busybox of busybox-static (its binary has no ELF interpreter), if any. */
export function staticBusybox(): string | undefined {
  for (const p of ["/bin/busybox", "/usr/bin/busybox"]) {
    if (!existsSync(p)) continue;
    const head = readFileSync(p).subarray(0, 4096);
    // A dynamically linked ELF names its interpreter (/lib64/ld-linux-...) near the start.
    if (head.subarray(0, 4).toString("latin1") === "\x7fELF" && !head.includes(Buffer.from("/ld-linux"))) return p;
  }
  return undefined;
}

/** Text every HTTP answer of the image's web server carries (its /www/index.html). */
export const INDEX_TEXT = "hello from a cnikit container";

/**
 * Writes `<dir>/rootfs.tar`: /bin/busybox (static) with a symlink per applet, /www/index.html and
 * the directories a container needs (/tmp, /proc, /sys, /dev, /etc). No registry involved.
 */
export function buildRootfsTar(dir: string): string {
  const busybox = staticBusybox();
  if (busybox === undefined) throw new Error("no statically linked busybox: install the Debian package busybox-static");
  const root = join(dir, "rootfs");
  for (const d of ["bin", "tmp", "proc", "sys", "dev", "etc", "www"]) mkdirSync(join(root, d), { recursive: true });
  writeFileSync(join(root, "bin", "busybox"), readFileSync(busybox));
  chmodSync(join(root, "bin", "busybox"), 0o755);
  const applets = execFileSync(busybox, ["--list"], { encoding: "utf8" })
    .split("\n")
    .filter((a) => a !== "" && a !== "busybox");
  for (const a of applets) symlinkSync("busybox", join(root, "bin", a));
  writeFileSync(join(root, "www", "index.html"), `${INDEX_TEXT}\n`);
  writeFileSync(join(root, "etc", "passwd"), "root:x:0:0:root:/:/bin/sh\n");
  const tar = join(dir, "rootfs.tar");
  execFileSync("tar", ["-C", root, "--numeric-owner", "--owner=0", "--group=0", "-cf", tar, "."]);
  return tar;
}

/** One call a runtime made to a plugin, as the logging wrapper recorded it. */
export interface PluginCallRecord {
  plugin: string;
  command: string;
  containerId: string;
  ifName: string;
  netns: string;
  args: string;
  /** The network config the runtime wrote on stdin (parsed; the raw text when not JSON). */
  conf: Record<string, unknown> | string;
  exit?: number;
  stdout?: string;
}

/**
 * Writes `<binDir>/<name>`: a /bin/sh wrapper that appends the call (CNI_* environment and stdin)
 * to `log`, runs `real` with the same stdin and environment, appends its exit status and stdout,
 * and answers as `real` did. `pathPrefix` is put in front of PATH (for a `#!/usr/bin/env node` shim).
 */
export function writeLoggingPlugin(options: { binDir: string; name: string; real: string; log: string; pathPrefix?: string }): string {
  const q = (s: string): string => `'${s.replace(/'/g, "'\\''")}'`;
  const log = q(options.log);
  const script = [
    "#!/bin/sh",
    `# Logging wrapper written by runtimes-fixture.ts around ${options.real}.`,
    ...(options.pathPrefix !== undefined ? [`PATH=${q(options.pathPrefix)}:"$PATH"; export PATH`] : []),
    "in=$(cat)",
    `printf 'CALL\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\n' ${q(options.name)} "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_IFNAME" "$CNI_NETNS" "$CNI_ARGS" >> ${log}`,
    `printf '%s' "$in" | tr -d '\\n' >> ${log}; echo >> ${log}`,
    `out=$(printf '%s' "$in" | ${q(options.real)}); rc=$?`,
    `printf 'EXIT\\t%s\\t%s\\t%s\\n' ${q(options.name)} "$rc" "$(printf '%s' "$out" | tr -d '\\n')" >> ${log}`,
    `[ -z "$out" ] || printf '%s\\n' "$out"`,
    "exit $rc",
    "",
  ].join("\n");
  const path = join(options.binDir, options.name);
  writeFileSync(path, script, { mode: 0o755 });
  return path;
}

/** The calls recorded in a wrapper log (oldest first). */
export function readCalls(log: string): PluginCallRecord[] {
  if (!existsSync(log)) return [];
  const lines = readFileSync(log, "utf8").split("\n");
  const out: PluginCallRecord[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.startsWith("CALL\t")) {
      const [, plugin, command, containerId, ifName, netns, args] = line.split("\t");
      const text = lines[i + 1] ?? "";
      let conf: Record<string, unknown> | string = text;
      try {
        conf = JSON.parse(text) as Record<string, unknown>;
      } catch {
        // left as text
      }
      out.push({ plugin: plugin!, command: command!, containerId: containerId!, ifName: ifName!, netns: netns!, args: args ?? "", conf });
      i++;
    } else if (line.startsWith("EXIT\t")) {
      const [, plugin, rc, ...rest] = line.split("\t");
      const open = [...out].reverse().find((c) => c.plugin === plugin && c.exit === undefined);
      if (open) {
        open.exit = Number(rc);
        open.stdout = rest.join("\t");
      }
    }
  }
  return out;
}

/** The calls as lines for the reader: who called what, with which version, capabilities and runtimeConfig. */
export function formatCalls(runtime: string, calls: readonly PluginCallRecord[]): string {
  const lines = [`${runtime}: ${calls.length} plugin call(s)`];
  for (const c of calls) {
    const conf = typeof c.conf === "string" ? {} : c.conf;
    const parts = [`  ${c.plugin} ${c.command}`, `exit ${c.exit ?? "?"}`, `cniVersion=${String(conf["cniVersion"] ?? "-")}`];
    if (c.containerId) parts.push(`CNI_CONTAINERID=${c.containerId}`);
    if (c.ifName) parts.push(`CNI_IFNAME=${c.ifName}`);
    if (c.netns) parts.push(`CNI_NETNS=${c.netns}`);
    if (c.args) parts.push(`CNI_ARGS=${c.args}`);
    parts.push(`config keys=[${Object.keys(conf).join(",")}]`);
    if (conf["capabilities"] !== undefined) parts.push(`capabilities=${JSON.stringify(conf["capabilities"])}`);
    parts.push(`runtimeConfig=${conf["runtimeConfig"] === undefined ? "(none)" : JSON.stringify(conf["runtimeConfig"])}`);
    if (conf["prevResult"] !== undefined) parts.push(`prevResult.ips=${JSON.stringify((conf["prevResult"] as { ips?: unknown }).ips)}`);
    lines.push(parts.join(" "));
    if (c.stdout) lines.push(`    -> ${c.stdout}`);
  }
  return lines.join("\n");
}

/** A CNI config dir and plugin dir of the test's own, for one runtime. */
export interface CniDirs {
  confDir: string;
  binDir: string;
  log: string;
  network: string;
}

/**
 * `<dir>/net.d/10-<network>.conflist` (cniVersion 1.0.0 — what Debian's portmap 1.1.1 speaks):
 * `cnikit-cni` with the node daemon's `socketPath`, chained with `portmap` (portMappings). The
 * plugin dir holds logging wrappers around `cnikitCni` and portmap, and loopback (ctr's `lo`).
 */
export function writeCniDirs(dir: string, options: { network: string; socketPath: string; cnikitCni: string }): CniDirs {
  const confDir = join(dir, "net.d");
  const binDir = join(dir, "bin");
  const log = join(dir, "calls.log");
  mkdirSync(confDir, { recursive: true });
  mkdirSync(binDir, { recursive: true });
  const conflist = {
    cniVersion: "1.0.0",
    name: options.network,
    plugins: [
      { type: "cnikit-cni", socketPath: options.socketPath },
      { type: "portmap", capabilities: { portMappings: true }, snat: true },
    ],
  };
  writeFileSync(join(confDir, `10-${options.network}.conflist`), `${JSON.stringify(conflist, null, 2)}\n`);
  writeLoggingPlugin({ binDir, name: "cnikit-cni", real: options.cnikitCni, log, pathPrefix: dirname(process.execPath) });
  writeLoggingPlugin({ binDir, name: "portmap", real: join(CNI_PLUGIN_DIR, "portmap"), log });
  symlinkSync(join(CNI_PLUGIN_DIR, "loopback"), join(binDir, "loopback"));
  return { confDir, binDir, log, network: options.network };
}

/**
 * podman's configuration under `dir`: `containers.conf` (CNI backend with the test's conf and
 * plugin dirs and default network, runc with `default_ulimits = []`, cgroupfs, no events, its own
 * tmp dir) and the global options putting root and runroot under `dir` (vfs storage).
 */
export function podmanSetup(dir: string, cni: CniDirs): { env: NodeJS.ProcessEnv; globals: string[] } {
  const conf = join(dir, "containers.conf");
  mkdirSync(join(dir, "tmp"), { recursive: true });
  writeFileSync(
    conf,
    [
      "[containers]",
      "default_ulimits = []",
      "[network]",
      'network_backend = "cni"',
      `network_config_dir = ${JSON.stringify(cni.confDir)}`,
      `cni_plugin_dirs = [${JSON.stringify(cni.binDir)}]`,
      `default_network = ${JSON.stringify(cni.network)}`,
      "[engine]",
      'runtime = "runc"',
      'cgroup_manager = "cgroupfs"',
      'events_logger = "none"',
      `tmp_dir = ${JSON.stringify(join(dir, "tmp"))}`,
      "",
    ].join("\n"),
  );
  return {
    env: { ...process.env, CONTAINERS_CONF: conf },
    globals: ["--root", join(dir, "root"), "--runroot", join(dir, "run"), "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--runtime", "runc"],
  };
}

/** containerd's config under `dir` (own root, state, sockets; the CRI plugin off); returns its path and socket. */
export function containerdSetup(dir: string): { config: string; socket: string } {
  mkdirSync(dir, { recursive: true });
  const socket = join(dir, "containerd.sock");
  const config = join(dir, "config.toml");
  writeFileSync(
    config,
    [
      "version = 2",
      `root = ${JSON.stringify(join(dir, "root"))}`,
      `state = ${JSON.stringify(join(dir, "state"))}`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      "[grpc]",
      `  address = ${JSON.stringify(socket)}`,
      "[ttrpc]",
      `  address = ${JSON.stringify(join(dir, "containerd.ttrpc.sock"))}`,
      "[debug]",
      '  address = ""',
      "[metrics]",
      '  address = ""',
      "",
    ].join("\n"),
  );
  return { config, socket };
}

/**
 * The shell script run by `unshare -m --propagation private` for `ctr run --cni`: bind-mounts the
 * test's conf dir over /etc/cni/net.d and its plugin dir at /opt/cni/bin (a tmpfs over /opt, in
 * this mount namespace only), then execs ctr.
 */
export function ctrRunScript(cni: CniDirs, ctrArgv: readonly string[]): string {
  const q = (s: string): string => `'${s.replace(/'/g, "'\\''")}'`;
  return [
    "set -e",
    `mount --bind ${q(cni.confDir)} /etc/cni/net.d`,
    "mount -t tmpfs -o mode=755 cnikit-rt /opt",
    "mkdir -p /opt/cni/bin",
    `mount --bind ${q(cni.binDir)} /opt/cni/bin`,
    `exec ${ctrArgv.map(q).join(" ")}`,
  ].join("\n");
}

/** PIDs (with command lines) of processes whose command line mentions `path`, this one excepted. */
export function processesMentioning(path: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const args = cmdlineOf(Number(entry));
    if (args?.some((a) => a.includes(path))) out.push(`pid ${entry}: ${args.join(" ")}`);
  }
  return out;
}

/** Mount points at or under `path` in this process's mount namespace, deepest first. */
export function mountsUnder(path: string): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4] ?? "")
    .filter((m) => m === path || m.startsWith(`${path}/`))
    .sort((a, b) => b.length - a.length);
}

/** What a runtime could leave behind in the host namespace, recorded before the runtimes run. */
export interface HostSnapshot {
  links: string[];
  natChains: string[];
  netnsFiles: string[];
  sysctls: Record<string, string>;
  dirsExisting: Record<string, boolean>;
}

const hostLinks = (): string[] => (JSON.parse(execFileSync("ip", ["-j", "link", "show"], { encoding: "utf8" })) as { ifname: string }[]).map((l) => l.ifname).sort();
const hostNatChains = (): string[] =>
  execFileSync("iptables-save", ["-t", "nat"], { encoding: "utf8" })
    .split("\n")
    .filter((l) => l.startsWith(":CNI-"))
    .map((l) => l.split(" ")[0]!.slice(1))
    .sort();
const netnsFiles = (): string[] => (existsSync("/run/netns") ? readdirSync("/run/netns").sort() : []);

export function snapshotHost(): HostSnapshot {
  const sysctls: Record<string, string> = {};
  for (const s of FORWARDING_SYSCTLS) if (existsSync(`/proc/sys/${s}`)) sysctls[s] = readFileSync(`/proc/sys/${s}`, "utf8").trim();
  const dirsExisting: Record<string, boolean> = {};
  for (const d of RUNTIME_HOST_DIRS) dirsExisting[d] = existsSync(d);
  return { links: hostLinks(), natChains: hostNatChains(), netnsFiles: netnsFiles(), sysctls, dirsExisting };
}

/**
 * What differs from `before` in the host namespace now, as readable lines: links a runtime makes
 * (cni-podman0, cni0, veths), CNI nat chains, podman's netns files (`netns-*`), forwarding sysctls, and libcni cache
 * entries of `containerIds`. Empty when the runtimes left nothing behind.
 */
export function hostDifferences(before: HostSnapshot, containerIds: readonly string[]): string[] {
  const out: string[] = [];
  // Only names a CNI runtime or plugin makes (cni-podman0, cni0, veth...): tests of other packages
  // running meanwhile may make links of their own.
  for (const l of hostLinks()) if (/^(cni|veth)/.test(l) && !before.links.includes(l)) out.push(`host link ${l}`);
  for (const c of hostNatChains()) if (!before.natChains.includes(c)) out.push(`host nat chain ${c}`);
  for (const f of netnsFiles()) if (f.startsWith("netns-") && !before.netnsFiles.includes(f)) out.push(`netns file /run/netns/${f}`);
  for (const [s, v] of Object.entries(before.sysctls)) {
    const now = readFileSync(`/proc/sys/${s}`, "utf8").trim();
    if (now !== v) out.push(`host sysctl ${s.replace(/\//g, ".")} = ${now} (was ${v})`);
  }
  const results = "/var/lib/cni/results";
  if (existsSync(results)) for (const f of readdirSync(results)) if (containerIds.some((id) => f.includes(id))) out.push(`libcni cache ${results}/${f}`);
  return out;
}

/**
 * Puts the host back: the forwarding sysctls as recorded, and the runtime directories that did not
 * exist before removed. Returns what it changed, for the log.
 */
export function restoreHost(before: HostSnapshot): string[] {
  const changed: string[] = [];
  for (const [s, v] of Object.entries(before.sysctls)) {
    const now = readFileSync(`/proc/sys/${s}`, "utf8").trim();
    if (now !== v) {
      writeFileSync(`/proc/sys/${s}`, v);
      changed.push(`restored ${s.replace(/\//g, ".")} ${now} -> ${v}`);
    }
  }
  for (const [d, existed] of Object.entries(before.dirsExisting)) {
    if (!existed && existsSync(d) && mountsUnder(d).length === 0) {
      rmSync(d, { recursive: true, force: true });
      changed.push(`removed ${d} (created by a runtime)`);
    }
  }
  return changed;
}
