/**
 * Real container runtimes as clients of cnikit, on a lab network (flannel vxlan, 2 nodes on two
 * subnets, an outside host): the cnikitd of node-1 runs in its namespace as the lab starts it, and
 * the runtimes run inside node-1's network namespace (`nsenter --net`), so their plugins (cnikit-cni
 * forwarding to the daemon's socket, portmap writing its DNAT rules) act on the node, not the host.
 *
 * - podman 4.3 (Debian) with its CNI backend: `containers.conf` through CONTAINERS_CONF (the test's
 *   conf and plugin dirs, runc with `default_ulimits = []`: crun refuses on this cgroups-hybrid
 *   host), root and runroot under the test's temp dir (vfs); an image from a busybox-static rootfs
 *   tarball (`podman import`); `podman run -p` gets its address from cnikit, reaches a pod on
 *   node-2 without NAT and the outside host, the published port answers from node-2 and the
 *   outside host, `podman rm` calls DEL (portmap, then cnikit-cni) and the address is free again.
 * - containerd 1.6: started by the test from a config with its own root, state and socket, stopped
 *   by PID; the image from `podman save --format oci-archive` + `ctr image import`; `ctr run --cni`
 *   reads the fixed /etc/cni/net.d and /opt/cni/bin, so it runs in a private mount namespace
 *   (`unshare -m`) with the test's dirs mounted there. Same ADD, traffic and DEL.
 *
 * Every plugin is a logging wrapper (runtimes-fixture.ts), and the test prints the calls the
 * runtime made: cniVersion, CNI_* environment, capabilities, runtimeConfig, prevResult.
 * The host namespace is compared before and after (links such as cni-podman0, CNI nat chains,
 * podman's netns files, forwarding sysctls, libcni's cache); the sysctls are restored and the
 * runtime directories that did not exist before are removed. Needs root and the Debian packages
 * in scripts/system-packages.txt; fails naming a missing one, never skips.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { cniPluginPath } from "@cnikit/cni";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LabCniError, PROBE_PORT, startLab, type Lab, type LabPod } from "../src/index.ts";
import { cmdlineOf, pidAlive, runAsync, stopProcesses, type CommandResult } from "../src/system.ts";
import {
  buildRootfsTar,
  containerdSetup,
  ctrRunScript,
  formatCalls,
  hostDifferences,
  INDEX_TEXT,
  mountsUnder,
  podmanSetup,
  processesMentioning,
  readCalls,
  requireRuntimeTools,
  RUNTIME_PACKAGES,
  RUNTIME_TOOLS,
  restoreHost,
  snapshotHost,
  staticBusybox,
  writeCniDirs,
  type CniDirs,
  type HostSnapshot,
  type PluginCallRecord,
} from "./runtimes-fixture.ts";

const RUN = `rt${process.pid}`;
const IMAGE = "localhost/cnikit-busybox:test";
const NETWORK = "cnikit-rt";
const HOST_PORT = 18080;
const PODMAN_NAME = `ck-podman-${process.pid}`;
const CTR_ID = `ck-ctr-${process.pid}`;
const CTR_NS = "cnikit";
const REPO = fileURLToPath(new URL("../../..", import.meta.url));
/** Per test: room for the 60 s condition waits on a loaded machine (a podman call alone can take 5 s then). */
const TEST_TIMEOUT_MS = 180_000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let lab: Lab | undefined;
let dir = "";
let before: HostSnapshot | undefined;
let podmanCni: CniDirs;
let ctrCni: CniDirs;
let pm: { env: NodeJS.ProcessEnv; globals: string[] };
let ociArchive = "";
let peer: LabPod;
let busybox = "";
let containerd: ChildProcess | undefined;
let ctrd: { config: string; socket: string };
let ctrRun: ChildProcess | undefined;
const containerIds: string[] = [];

function theLab(): Lab {
  if (!lab) throw new Error("the lab did not start (see beforeAll)");
  return lab;
}

/** Polls `probe` until it returns a value (not undefined) or `timeoutMs` passes; throws naming `what` and the last state. */
async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
    await sleep(100);
  }
}

function must(r: CommandResult, what: string): string {
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}):\n${r.stderr}\n${r.stdout}`);
  return r.stdout;
}

/** podman with the test's config, root and runroot, inside node-1's network namespace. */
function podman(args: readonly string[], timeoutMs = 120_000): Promise<CommandResult> {
  return runAsync(["nsenter", `--net=/run/netns/${theLab().node("node-1").ns}`, "podman", ...pm.globals, ...args], { env: pm.env, timeoutMs });
}

function ctr(args: readonly string[], timeoutMs = 120_000): Promise<CommandResult> {
  return runAsync(["ctr", "--address", ctrd.socket, "--namespace", CTR_NS, ...args], { timeoutMs });
}

/** ctr's FIFO directory (its default is /run/containerd/fifo on the host). */
const ctrFifoDir = (): string => join(dir, "containerd", "fifo");

/** The first IPv4 address (without prefix length) of a CNI result printed as JSON. */
function resultIp(stdout: string | undefined): string {
  const r = JSON.parse(stdout ?? "") as { ips?: { address: string }[] };
  const ip = r.ips?.find((i) => !i.address.includes(":"))?.address;
  if (ip === undefined) throw new Error(`no IPv4 address in result ${stdout}`);
  return ip.split("/")[0]!;
}

function callsOf(cni: CniDirs, containerId: string, command: string): PluginCallRecord[] {
  return readCalls(cni.log).filter((c) => c.containerId === containerId && c.command === command);
}

/** node-1's links (names). */
async function nodeLinks(): Promise<string[]> {
  return (JSON.parse(must(await theLab().exec("node-1", ["ip", "-j", "link", "show"]), "ip link on node-1")) as { ifname: string }[]).map((l) => l.ifname);
}

async function nodeNat(): Promise<string> {
  return must(await theLab().exec("node-1", ["iptables-save", "-t", "nat"]), "iptables-save on node-1");
}

/**
 * Asks node-1's cnikitd for `ip` with an ADD of a scratch lab pod (CNI_ARGS IP=): resolves "held"
 * when the daemon refuses because the address is taken, "free" when it hands it out (the scratch
 * pod is deleted again).
 */
async function reservation(ip: string, name: string): Promise<"held" | "free"> {
  try {
    const pod = await theLab().addPod("node-1", { name, args: { IP: ip } });
    expect(pod.ip).toBe(ip);
    await theLab().deletePod(name);
    return "free";
  } catch (e) {
    if ((e as { name?: string }).name !== LabCniError.name) throw e;
    expect((e as Error).message).toContain(ip);
    return "held";
  }
}

/** TCP to the lab's probe agent at `address` from inside the container; the agent answers {echo, peer}. */
async function probeFrom(exec: (argv: string[]) => Promise<CommandResult>, address: string): Promise<{ echo: string; peer: string }> {
  return waitFor(`a TCP echo from ${address}:${PROBE_PORT}`, async () => {
    const r = await exec(["sh", "-c", `echo cnikit-probe | nc -w 3 ${address} ${PROBE_PORT}`]);
    if (r.code !== 0 || !r.stdout.includes("{")) return undefined;
    return JSON.parse(r.stdout.trim()) as { echo: string; peer: string };
  });
}

/** HTTP GET of the published port on node-1 from inside endpoint `from`, with the host's busybox nc. */
async function httpFrom(from: string): Promise<string> {
  const address = theLab().node("node-1").address;
  return waitFor(`HTTP from ${from} to ${address}:${HOST_PORT}`, async () => {
    const r = await theLab().exec(from, [busybox, "nc", "-w", "5", address, String(HOST_PORT)], { input: "GET / HTTP/1.0\r\n\r\n", timeoutMs: 15_000 });
    return r.stdout.includes(INDEX_TEXT) ? r.stdout : undefined;
  });
}

beforeAll(async () => {
  requireRuntimeTools();
  busybox = staticBusybox()!;
  before = snapshotHost();
  dir = mkdtempSync(join(tmpdir(), `cnikit-${RUN}-`));
  lab = await startLab({ name: RUN, backend: "flannel", mode: "vxlan", nodes: 2, podsPerNode: 1 });
  peer = lab.pods.find((p) => p.node === "node-2")!;
  const socketPath = lab.node("node-1").socketPath;
  podmanCni = writeCniDirs(join(dir, "podman-cni"), { network: NETWORK, socketPath, cnikitCni: cniPluginPath() });
  ctrCni = writeCniDirs(join(dir, "ctr-cni"), { network: NETWORK, socketPath, cnikitCni: cniPluginPath() });
  pm = podmanSetup(join(dir, "podman"), podmanCni);
  // The image: podman imports the rootfs tarball; containerd gets it as an OCI archive from podman.
  const tar = buildRootfsTar(dir);
  must(await podman(["import", tar, IMAGE]), "podman import");
  ociArchive = join(dir, "image.oci.tar");
  must(await podman(["save", "--format", "oci-archive", "-o", ociArchive, IMAGE]), "podman save --format oci-archive");
}, 240_000);

afterAll(async () => {
  const notes: string[] = [];
  if (lab && pm) {
    await podman(["rm", "-f", "-t", "0", PODMAN_NAME]).catch(() => undefined);
    await podman(["rmi", "-f", IMAGE]).catch(() => undefined);
  }
  if (ctrRun?.pid !== undefined && pidAlive(ctrRun.pid)) {
    await ctr(["task", "kill", "-s", "SIGKILL", CTR_ID]).catch(() => undefined);
    await waitFor("ctr run to exit", () => (pidAlive(ctrRun!.pid!) ? undefined : true), 30_000).catch(() => stopProcesses([{ pid: ctrRun!.pid!, marker: "nsenter" }]));
  }
  if (containerd?.pid !== undefined && pidAlive(containerd.pid)) {
    await ctr(["container", "rm", CTR_ID]).catch(() => undefined);
    await stopProcesses([{ pid: containerd.pid, marker: ctrd.config }], { signal: "SIGTERM", graceMs: 15_000 });
  }
  if (dir) {
    // conmon, podman's cleanup process and containerd shims exit on their own once their
    // container is gone; what still names the test's directory after that is ours to stop.
    await waitFor("the runtimes' helper processes to exit", () => (processesMentioning(dir).length === 0 ? true : undefined), 30_000).catch(() => undefined);
    for (const p of processesMentioning(dir)) {
      const pid = Number(/^pid (\d+)/.exec(p)![1]);
      notes.push(`stopped leftover ${p}`);
      const marker = cmdlineOf(pid)?.[0];
      if (marker !== undefined) await stopProcesses([{ pid, marker }]).catch(() => undefined);
    }
    for (const m of mountsUnder(dir)) await runAsync(["umount", "-l", m]);
  }
  if (lab) await lab.down();
  if (dir && mountsUnder(dir).length === 0) rmSync(dir, { recursive: true, force: true });
  if (before) notes.push(...restoreHost(before));
  if (notes.length > 0) console.log(`runtimes cleanup:\n  ${notes.join("\n  ")}`);
}, 240_000);

describe("set-up", () => {
  it("every Debian package these tests need is listed in scripts/system-packages.txt (what .ci/run installs)", () => {
    const listed = readFileSync(join(REPO, "scripts", "system-packages.txt"), "utf8")
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l !== "" && !l.startsWith("#"));
    const essential = ["util-linux", "tar"];
    const needed = [...new Set([...RUNTIME_PACKAGES, ...RUNTIME_TOOLS.map(([, pkg]) => pkg)])].filter((p) => !essential.includes(p));
    expect(needed.filter((p) => !listed.includes(p))).toEqual([]);
  });
});

describe("podman 4 (CNI backend) on a cnikit network chained with portmap", { timeout: TEST_TIMEOUT_MS }, () => {
  let id = "";
  let ip = "";
  let hostVeth = "";

  it("uses only the test's network (no default podman network) and the imported busybox image", async () => {
    expect(
      must(await podman(["network", "ls", "--format", "{{.Name}}"]), "podman network ls")
        .trim()
        .split("\n"),
    ).toEqual([NETWORK]);
    expect(must(await podman(["images", "--format", "{{.Repository}}:{{.Tag}}"]), "podman images")).toContain(IMAGE);
  });

  it("podman run -p: ADD goes to cnikit-cni then portmap; the container has cnikit's address", async () => {
    const started = Date.now();
    id = must(await podman(["run", "-d", "--name", PODMAN_NAME, "--network", NETWORK, "-p", `${HOST_PORT}:80`, IMAGE, "httpd", "-f", "-p", "80", "-h", "/www"]), "podman run").trim();
    const runMs = Date.now() - started;
    containerIds.push(id);
    const calls = readCalls(podmanCni.log);
    console.log(`${formatCalls("podman run", calls)}\n  (podman run took ${runMs} ms)`);

    const adds = calls.filter((c) => c.command === "ADD");
    expect(adds.map((c) => c.plugin)).toEqual(["cnikit-cni", "portmap"]);
    const [add, pmAdd] = adds as [PluginCallRecord, PluginCallRecord];
    expect(add).toMatchObject({ containerId: id, ifName: "eth0", exit: 0 });
    expect(add.netns).toMatch(/^\/run\/netns\//);
    expect(add.conf).toMatchObject({ cniVersion: "1.0.0", name: NETWORK, type: "cnikit-cni", socketPath: theLab().node("node-1").socketPath });
    // No capabilities declared for cnikit-cni: no runtimeConfig; portmap gets the port mapping.
    expect((add.conf as Record<string, unknown>)["runtimeConfig"]).toBeUndefined();
    expect((pmAdd.conf as Record<string, unknown>)["runtimeConfig"]).toMatchObject({ portMappings: [expect.objectContaining({ hostPort: HOST_PORT, containerPort: 80, protocol: "tcp" })] });
    ip = resultIp(add.stdout);
    expect(((pmAdd.conf as Record<string, unknown>)["prevResult"] as { ips: { address: string }[] }).ips[0]!.address).toBe(`${ip}/24`);
    expect(pmAdd.exit).toBe(0);
    hostVeth = (JSON.parse(add.stdout!) as { interfaces: { name: string }[] }).interfaces[1]!.name;

    const inside = must(await podman(["exec", PODMAN_NAME, "ip", "-4", "-o", "addr", "show", "eth0"]), "podman exec ip addr");
    expect(inside).toContain(`inet ${ip}/24`);
    expect(await nodeLinks()).toContain(hostVeth);
    expect(await reservation(ip, "held-podman")).toBe("held");
  });

  it("the container reaches a pod on node-2 without NAT and the outside host", async () => {
    const exec = (argv: string[]) => podman(["exec", PODMAN_NAME, ...argv]);
    expect(await probeFrom(exec, peer.ip)).toEqual({ echo: "cnikit-probe", peer: ip });
    const outside = await probeFrom(exec, theLab().endpoint("internet").address);
    expect(outside.echo).toBe("cnikit-probe");
  });

  it("the published port (portmap's DNAT on node-1) answers from node-2 and from the outside host", async () => {
    expect(await nodeNat()).toContain(`--dport ${HOST_PORT} -j DNAT --to-destination ${ip}:80`);
    expect(await httpFrom("node-2")).toContain("200 OK");
    expect(await httpFrom("internet")).toContain("200 OK");
  });

  it("podman network reload: DEL, then ADD asking for the same address and MAC (CNI_ARGS IP=, MAC=): cnikit gives the address back, the port is published again", async () => {
    const mark = readCalls(podmanCni.log).length;
    must(await podman(["network", "reload", PODMAN_NAME]), "podman network reload");
    const calls = readCalls(podmanCni.log)
      .slice(mark)
      .filter((c) => c.command === "ADD" || c.command === "DEL");
    console.log(formatCalls("podman network reload", calls));
    expect(calls.map((c) => `${c.plugin} ${c.command}`)).toEqual(["portmap DEL", "cnikit-cni DEL", "cnikit-cni ADD", "portmap ADD"]);
    const add = calls[2]!;
    expect(add.args.split(";")).toEqual(expect.arrayContaining([`IP=${ip}`, expect.stringMatching(/^MAC=/)]));
    expect(add.exit).toBe(0);
    expect(resultIp(add.stdout)).toBe(ip);
    hostVeth = (JSON.parse(add.stdout!) as { interfaces: { name: string }[] }).interfaces[1]!.name;
    expect(must(await podman(["exec", PODMAN_NAME, "ip", "-4", "-o", "addr", "show", "eth0"]), "podman exec ip addr")).toContain(`inet ${ip}/24`);
    expect(await httpFrom("node-2")).toContain("200 OK");
  });

  it("podman run --ip (CNI_ARGS IP=): cnikit hands out the requested address of node-1's range, and frees it at rm", async () => {
    const wanted = ip.replace(/\.\d+$/, ".200");
    const name = `${PODMAN_NAME}-ip`;
    const mark = readCalls(podmanCni.log).length;
    const other = must(await podman(["run", "-d", "--name", name, "--network", NETWORK, "--ip", wanted, IMAGE, "httpd", "-f", "-p", "80", "-h", "/www"]), "podman run --ip").trim();
    containerIds.push(other);
    const add = readCalls(podmanCni.log)
      .slice(mark)
      .find((c) => c.plugin === "cnikit-cni" && c.command === "ADD")!;
    expect(add.args.split(";")).toContain(`IP=${wanted}`);
    expect(resultIp(add.stdout)).toBe(wanted);
    expect(must(await podman(["exec", name, "ip", "-4", "-o", "addr", "show", "eth0"]), "podman exec ip addr")).toContain(`inet ${wanted}/24`);
    must(await podman(["rm", "-f", "-t", "0", name]), "podman rm");
    expect(callsOf(podmanCni, other, "DEL").map((c) => `${c.plugin} ${c.exit}`)).toEqual(["portmap 0", "cnikit-cni 0"]);
    expect(await reservation(wanted, "free-podman-ip")).toBe("free");
  });

  it("podman rm: DEL goes to portmap then cnikit-cni; the veth, the DNAT and the reservation are gone", async () => {
    const mark = readCalls(podmanCni.log).length;
    must(await podman(["rm", "-f", "-t", "0", PODMAN_NAME]), "podman rm");
    const dels = readCalls(podmanCni.log)
      .slice(mark)
      .filter((c) => c.command === "DEL");
    console.log(formatCalls("podman rm", readCalls(podmanCni.log).slice(mark)));
    expect(dels.slice(0, 2).map((c) => c.plugin)).toEqual(["portmap", "cnikit-cni"]);
    for (const d of dels) expect(d).toMatchObject({ containerId: id, ifName: "eth0", exit: 0 });
    expect(((dels[1]!.conf as Record<string, unknown>)["prevResult"] as { ips: { address: string }[] }).ips[0]!.address).toBe(`${ip}/24`);
    expect(callsOf(podmanCni, id, "DEL").every((c) => c.exit === 0)).toBe(true);

    expect(await nodeLinks()).not.toContain(hostVeth);
    expect(await nodeNat()).not.toContain(`--dport ${HOST_PORT}`);
    expect(await reservation(ip, "free-podman")).toBe("free");
    await waitFor("podman's helper processes to exit", () => (processesMentioning(join(dir, "podman")).length === 0 ? true : undefined));
    expect(await nodeLinks()).not.toContain("cni-podman0");
    expect(hostDifferences(before!, containerIds)).toEqual([]);
  });

  it("with node-1's cnikitd down, podman run fails with cnikit's error (code 11, try again later), podman DELs, no netns is left; the address is free once the daemon is back", async () => {
    const name = `${PODMAN_NAME}-down`;
    await theLab().killDaemon("node-1");
    const mark = readCalls(podmanCni.log).length;
    const r = await podman(["run", "-d", "--name", name, "--network", NETWORK, IMAGE, "httpd", "-f", "-p", "80", "-h", "/www"]);
    const calls = readCalls(podmanCni.log)
      .slice(mark)
      .filter((c) => c.command !== "VERSION");
    console.log(`${formatCalls("podman run, cnikitd down", calls)}\n  podman said: ${r.stderr.trim()}`);
    expect(r.code).not.toBe(0);
    const add = calls.find((c) => c.plugin === "cnikit-cni" && c.command === "ADD")!;
    containerIds.push(add.containerId);
    expect(add.exit).toBe(1);
    const error = JSON.parse(add.stdout!) as { code: number; msg: string };
    expect(error.code).toBe(11);
    expect(r.stderr).toContain(error.msg);
    // portmap never ran ADD. podman follows the failed ADD with DEL in reverse order (checklist
    // item 48); cnikit-cni's DEL fails with 11 as well while the daemon is down: only the daemon
    // can release, and a DEL that claimed success would let the runtime forget the attachment.
    expect(calls.map((c) => `${c.plugin} ${c.command} ${c.exit}`)).toEqual(["cnikit-cni ADD 1", "portmap DEL 0", "cnikit-cni DEL 1"]);
    await podman(["rm", "-f", "-t", "0", name]);
    expect(hostDifferences(before!, containerIds)).toEqual([]);
    await theLab().restartDaemon("node-1");
    expect(await reservation(ip, "back-podman")).toBe("free");
  });
});

describe("containerd 1.6: ctr run --cni with the same conflist", { timeout: TEST_TIMEOUT_MS }, () => {
  const fullId = `${CTR_NS}-${CTR_ID}`;
  let ip = "";
  let hostVeth = "";

  it("containerd starts from its own config (root, state, socket under the test's dir) and imports podman's OCI archive", async () => {
    ctrd = containerdSetup(join(dir, "containerd"));
    const log = openSync(join(dir, "containerd", "containerd.log"), "a");
    containerd = spawn("containerd", ["--config", ctrd.config], { stdio: ["ignore", log, log] });
    closeSync(log);
    await waitFor("containerd to answer", async () => ((await ctr(["version"], 10_000)).code === 0 ? true : undefined));
    must(await ctr(["image", "import", "--all-platforms", ociArchive]), "ctr image import");
    expect(must(await ctr(["image", "ls", "-q"]), "ctr image ls")).toContain(IMAGE);
  });

  it("ctr run --cni (private mount namespace, node-1's network namespace): ADD from ctr, the container has cnikit's address", async () => {
    const script = join(dir, "ctr-run.sh");
    const argv = [
      "ctr",
      "--address",
      ctrd.socket,
      "--namespace",
      CTR_NS,
      "run",
      "--cni",
      "--rm",
      "--fifo-dir",
      ctrFifoDir(),
      "--runc-root",
      join(dir, "containerd", "runc"),
      IMAGE,
      CTR_ID,
      "httpd",
      "-f",
      "-p",
      "80",
      "-h",
      "/www",
    ];
    writeFileSync(script, `${ctrRunScript(ctrCni, argv)}\n`);
    const out = openSync(join(dir, "ctr-run.log"), "a");
    const started = Date.now();
    ctrRun = spawn("nsenter", [`--net=/run/netns/${theLab().node("node-1").ns}`, "unshare", "-m", "--propagation", "private", "sh", script], { stdio: ["ignore", out, out] });
    closeSync(out);
    const add = await waitFor(
      "ctr's ADD to cnikit-cni",
      () => {
        if (ctrRun?.exitCode !== null) throw new Error(`ctr run exited (${ctrRun?.exitCode}): ${readFileSync(join(dir, "ctr-run.log"), "utf8")}`);
        return callsOf(ctrCni, fullId, "ADD").find((c) => c.plugin === "portmap" && c.exit !== undefined) ? callsOf(ctrCni, fullId, "ADD")[0] : undefined;
      },
      90_000,
    );
    containerIds.push(fullId);
    await waitFor("the task to run", async () => (must(await ctr(["task", "ls"]), "ctr task ls").includes("RUNNING") ? true : undefined));
    console.log(`${formatCalls("ctr run --cni", readCalls(ctrCni.log))}\n  (ADD done ${Date.now() - started} ms after ctr run started)`);

    expect(add).toMatchObject({ plugin: "cnikit-cni", ifName: "eth0", exit: 0 });
    expect(add.netns).toMatch(/^\/proc\/\d+\/ns\/net$/);
    expect(add.conf).toMatchObject({ cniVersion: "1.0.0", name: NETWORK, type: "cnikit-cni" });
    ip = resultIp(add.stdout);
    hostVeth = (JSON.parse(add.stdout!) as { interfaces: { name: string }[] }).interfaces[1]!.name;
    const inside = must(await ctr(["task", "exec", "--fifo-dir", ctrFifoDir(), "--exec-id", "addr", CTR_ID, "ip", "-4", "-o", "addr", "show", "eth0"]), "ctr task exec ip addr");
    expect(inside).toContain(`inet ${ip}/24`);
    expect(await reservation(ip, "held-ctr")).toBe("held");
  });

  it("the container reaches a pod on node-2 without NAT and the outside host", async () => {
    let n = 0;
    const exec = (argv: string[]) => ctr(["task", "exec", "--fifo-dir", ctrFifoDir(), "--exec-id", `probe${++n}`, CTR_ID, ...argv]);
    expect(await probeFrom(exec, peer.ip)).toEqual({ echo: "cnikit-probe", peer: ip });
    expect((await probeFrom(exec, theLab().endpoint("internet").address)).echo).toBe("cnikit-probe");
  });

  it("the task ends: ctr calls DEL (portmap, then cnikit-cni, without CNI_NETNS); the veth and the reservation are gone; containerd stops", async () => {
    const mark = readCalls(ctrCni.log).length;
    must(await ctr(["task", "kill", "-s", "SIGKILL", CTR_ID]), "ctr task kill");
    await waitFor("ctr run to exit", () => (ctrRun?.exitCode !== null ? true : undefined));
    const after = readCalls(ctrCni.log).slice(mark);
    console.log(formatCalls("ctr run --cni, task ended", after));
    const dels = after.filter((c) => c.command === "DEL" && c.containerId === fullId);
    expect(dels.map((c) => c.plugin)).toEqual(["portmap", "cnikit-cni"]);
    for (const d of dels) expect(d).toMatchObject({ ifName: "eth0", netns: "", exit: 0 });

    expect(await nodeLinks()).not.toContain(hostVeth);
    expect(await reservation(ip, "free-ctr")).toBe("free");
    expect(must(await ctr(["container", "ls", "-q"]), "ctr container ls").trim()).toBe("");

    const pid = containerd!.pid!;
    await stopProcesses([{ pid, marker: ctrd.config }], { signal: "SIGTERM", graceMs: 15_000 });
    expect(pidAlive(pid)).toBe(false);
    await waitFor("containerd's shims to exit", () => (processesMentioning(dir).length === 0 ? true : undefined));
    expect(mountsUnder(dir)).toEqual([]);
    expect(hostDifferences(before!, containerIds)).toEqual([]);
  });
});
