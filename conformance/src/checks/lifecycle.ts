/**
 * Section B: CNI lifecycle rules. In the simulator they run through the agent API (NodeAgent.attach /
 * detach / check / gc / status), the layer the CNI plugin executable sits on; the checks that only
 * make sense against the executable (result versions, error JSON on stdout, chaining) are reported
 * "not run" here and run with `--dataplane linux` (@cnikit/lab), which drives all of section B
 * through the executable.
 */
import { MemoryDatastore, MemoryNetwork, Prefix, VirtualClock, canonicalDataplane, parseInterfaceAddress, silentLogger } from "@cnikit/core";
import type { AttachResult, NodeAgent, PodAttachment, PodRef } from "@cnikit/core";
import { SOURCES, fail, notRun, pass } from "../check.ts";
import type { CheckDefinition, CheckEnv } from "../check.ts";
import { describeError, drivenAgent, errorCode, storeContents, summarizeProblems, thrown } from "../harness.ts";
import type { Harness } from "../harness.ts";

const PLUGIN_NEEDED = "runs through the CNI plugin executable: use --dataplane linux";

function attachment(id: string, ifName = "eth0"): PodAttachment {
  return { containerId: id, ifName, netns: `/var/run/netns/${id}`, namespace: "default", podName: id };
}

function ref(id: string, ifName = "eth0"): PodRef {
  return { containerId: id, ifName };
}

function key(r: PodRef): string {
  return `${r.containerId}/${r.ifName}`;
}

/** A fresh cluster of two started nodes. */
async function twoNodes(env: CheckEnv, salt: string): Promise<{ h: Harness; names: [string, string] }> {
  const h = env.harness(salt);
  await h.cluster.addNode({ name: "b-1" });
  await h.cluster.addNode({ name: "b-2" });
  await h.cluster.settle({ limitMs: env.summary.convergenceMs });
  return { h, names: ["b-1", "b-2"] };
}

/** The node's current agent, its CNI operations driven on the cluster's clock. */
function agentOf(h: Harness, node: string): NodeAgent {
  return drivenAgent(h.cluster.node(node).agent, h.clock);
}

function firstAddress(result: AttachResult): string | undefined {
  const ip = result.ips[0];
  return ip ? ip.address.split("/")[0] : undefined;
}

function podKeysOf(h: Harness, node: string): string[] {
  return agentOf(h, node)
    .dataplane()
    .pods.map((p) => p.key)
    .sort();
}

/** Whether an error means "requested addresses are not supported" (code 2, or 7 naming them). */
function requestedIpsUnsupported(err: unknown): boolean {
  const code = errorCode(err);
  return code === 2 || (code === 7 && /ip/i.test(String((err as { field?: unknown }).field ?? "")));
}

/** Problems with the shape of an ADD result (CNI 1.x result: interfaces, ips with index, routes, dns). */
function resultShapeProblems(result: AttachResult, pod: PodAttachment, podRanges: string[]): string[] {
  const problems: string[] = [];
  const where = `ADD ${pod.containerId}/${pod.ifName}`;
  if (!Array.isArray(result.interfaces) || result.interfaces.length === 0) problems.push(`${where}: result has no interfaces`);
  if (!Array.isArray(result.ips) || result.ips.length === 0) problems.push(`${where}: result has no ips`);
  if (!Array.isArray(result.routes)) problems.push(`${where}: result.routes is not a list`);
  const interfaces = Array.isArray(result.interfaces) ? result.interfaces : [];
  interfaces.forEach((iface, i) => {
    if (typeof iface.name !== "string" || iface.name === "") problems.push(`${where}: interfaces[${i}] has no name`);
  });
  const container = interfaces.find((i) => i.name === pod.ifName && i.sandbox !== undefined && i.sandbox !== "");
  if (!container) problems.push(`${where}: no interface named ${pod.ifName} with a sandbox (the container side must carry sandbox = CNI_NETNS)`);
  else if (container.sandbox !== pod.netns) problems.push(`${where}: container interface sandbox is ${container.sandbox}, expected the netns ${pod.netns}`);
  const ranges = podRanges.map((r) => Prefix.parse(r));
  (Array.isArray(result.ips) ? result.ips : []).forEach((ip, i) => {
    let address: string;
    try {
      address = parseInterfaceAddress(ip.address).address;
    } catch {
      problems.push(`${where}: ips[${i}].address ${JSON.stringify(ip.address)} is not an address with prefix length (CIDR)`);
      return;
    }
    if (!ranges.some((r) => r.contains(address))) problems.push(`${where}: ips[${i}].address ${address} is outside the pod range(s)`);
    if (ip.interface !== undefined) {
      const target = interfaces[ip.interface];
      if (!Number.isInteger(ip.interface) || !target) problems.push(`${where}: ips[${i}].interface ${ip.interface} is not an index into interfaces`);
      else if (!target.sandbox) problems.push(`${where}: ips[${i}].interface points at ${target.name}, which is not a container interface (no sandbox)`);
    }
    if (ip.gateway !== undefined && !/^[0-9a-fA-F.:]+$/.test(ip.gateway)) problems.push(`${where}: ips[${i}].gateway ${ip.gateway} is not an address`);
  });
  (Array.isArray(result.routes) ? result.routes : []).forEach((route, i) => {
    try {
      Prefix.parse(route.dst);
    } catch {
      problems.push(`${where}: routes[${i}].dst ${JSON.stringify(route.dst)} is not a CIDR`);
    }
  });
  if (result.dns !== undefined && (typeof result.dns !== "object" || result.dns === null)) problems.push(`${where}: dns is not an object`);
  return problems;
}

export const lifecycleChecks: CheckDefinition[] = [
  {
    id: "cni.add-result",
    section: "B",
    rule: "ADD returns interfaces (container side with sandbox), ips with an interface index, routes, and dns in the 1.x result shape.",
    source: SOURCES.cniAdd,
    required: true,
    async run(env) {
      const { h, names } = await twoNodes(env, "cni.add-result");
      const problems: string[] = [];
      for (const node of names) {
        const pod = attachment(`add-result-${node}`);
        const result = await agentOf(h, node).attach(pod);
        problems.push(...resultShapeProblems(result, pod, env.summary.podRanges).map((p) => `${p} on node ${node}`));
        const address = firstAddress(result);
        const dp = agentOf(h, node).dataplane().pods.find((p) => p.key === key(pod));
        if (!dp) problems.push(`ADD ${key(pod)} on node ${node}: the pod is missing from the node's dataplane`);
        else if (address && !dp.addresses.some((a) => a.split("/")[0] === address)) {
          problems.push(`ADD ${key(pod)} on node ${node}: result says ${address}, the dataplane says ${dp.addresses.join(", ")}`);
        }
      }
      return problems.length > 0 ? fail(summarizeProblems(problems)) : pass();
    },
  },
  {
    id: "cni.result-versions",
    section: "B",
    rule: "The plugin answers in the requested result version (0.3.0 to 1.1.0) and negotiates 1.0.0 in a conflist with the reference plugins.",
    source: SOURCES.cniVersions,
    required: true,
    gate: () => ({ status: "not run", reason: PLUGIN_NEEDED }),
    async run() {
      return notRun(PLUGIN_NEEDED);
    },
  },
  {
    id: "cni.plugin-error-json",
    section: "B",
    rule: "Errors are the spec's JSON on stdout with the right code and a non-zero exit status.",
    source: SOURCES.cniErrors,
    required: true,
    gate: () => ({ status: "not run", reason: PLUGIN_NEEDED }),
    async run() {
      return notRun(PLUGIN_NEEDED);
    },
  },
  {
    id: "cni.add-idempotent",
    section: "B",
    rule: "A second ADD for the same (containerId, ifName), also concurrent, returns the same address and reserves nothing more.",
    source: `${SOURCES.contract}; CNI SPEC.md section 'ADD'`,
    required: true,
    async run(env) {
      const { h, names } = await twoNodes(env, "cni.add-idempotent");
      const node = names[0];
      const agent = agentOf(h, node);
      const pod = attachment("idem");
      const first = await agent.attach(pod);
      const second = await agent.attach(pod);
      const problems: string[] = [];
      if (JSON.stringify(first.ips) !== JSON.stringify(second.ips)) {
        problems.push(`second ADD of ${key(pod)} on node ${node} returned ips ${JSON.stringify(second.ips)}, the first ${JSON.stringify(first.ips)}`);
      }
      const both = [attachment("idem-concurrent"), attachment("idem-concurrent")];
      const raw = h.cluster.node(node).agent;
      const results = await h.drive(Promise.all(both.map((p) => raw.attach(p))));
      if (firstAddress(results[0]!) !== firstAddress(results[1]!)) {
        problems.push(`two concurrent ADDs of idem-concurrent/eth0 on node ${node} got ${firstAddress(results[0]!)} and ${firstAddress(results[1]!)}`);
      }
      const keys = agent.dataplane().pods.map((p) => p.key);
      for (const k of ["idem/eth0", "idem-concurrent/eth0"]) {
        const n = keys.filter((x) => x === k).length;
        if (n !== 1) problems.push(`the dataplane of node ${node} has ${n} interfaces for ${k} (expected 1)`);
      }
      if (keys.length !== 2) problems.push(`node ${node} has ${keys.length} pod interfaces after ADDs of 2 attachments: ${keys.join(", ")}`);
      return problems.length > 0 ? fail(summarizeProblems(problems)) : pass();
    },
  },
  {
    id: "cni.del-idempotent",
    section: "B",
    rule: "DEL succeeds for an attachment that exists, and again for the same attachment (second DEL), removing it from the dataplane.",
    source: SOURCES.cniDel,
    required: true,
    async run(env) {
      const { h, names } = await twoNodes(env, "cni.del-idempotent");
      const node = names[0];
      const pod = attachment("del-twice");
      await agentOf(h, node).attach(pod);
      const problems: string[] = [];
      const e1 = await thrown(() => agentOf(h, node).detach(ref("del-twice")));
      if (e1) problems.push(`first DEL of del-twice/eth0 on node ${node} threw ${describeError(e1)}`);
      const e2 = await thrown(() => agentOf(h, node).detach(ref("del-twice")));
      if (e2) problems.push(`second DEL of del-twice/eth0 on node ${node} threw ${describeError(e2)}`);
      if (podKeysOf(h, node).includes("del-twice/eth0")) problems.push(`after DEL, del-twice/eth0 is still in the dataplane of node ${node}`);
      return problems.length > 0 ? fail(summarizeProblems(problems)) : pass();
    },
  },
  {
    id: "cni.del-unknown",
    section: "B",
    rule: "DEL of an attachment the node never saw succeeds and touches nothing else.",
    source: SOURCES.cniDel,
    required: true,
    async run(env) {
      const { h, names } = await twoNodes(env, "cni.del-unknown");
      const node = names[0];
      await agentOf(h, node).attach(attachment("keep"));
      const before = JSON.stringify(canonicalDataplane(agentOf(h, node).dataplane()));
      const problems: string[] = [];
      for (const r of [ref("never-seen"), ref("keep", "eth1")]) {
        const err = await thrown(() => agentOf(h, node).detach(r));
        if (err) problems.push(`DEL of unknown ${key(r)} on node ${node} threw ${describeError(err)}`);
      }
      const after = JSON.stringify(canonicalDataplane(agentOf(h, node).dataplane()));
      if (before !== after) problems.push(`DEL of unknown attachments changed the dataplane of node ${node} (keep/eth0 must stay)`);
      return problems.length > 0 ? fail(summarizeProblems(problems)) : pass();
    },
  },
  {
    id: "cni.del-releases",
    section: "B",
    rule: "DEL releases the address: the same address can be handed out again (asked for as a requested IP).",
    source: `${SOURCES.cniDel}; host-local 'DEL frees files matching the pair'`,
    required: true,
    async run(env) {
      const { h, names } = await twoNodes(env, "cni.del-releases");
      const node = names[0];
      const problems: string[] = [];
      for (let i = 0; i < 3; i++) {
        const id = `rel-${i}`;
        const first = await agentOf(h, node).attach(attachment(id));
        const address = firstAddress(first);
        if (!address) return fail(`ADD ${id}/eth0 on node ${node} returned no address`);
        await agentOf(h, node).detach(ref(id));
        const again = attachment(`rel-${i}-again`);
        again.requestedIps = [address];
        let result: AttachResult;
        try {
          result = await agentOf(h, node).attach(again);
        } catch (err) {
          if (requestedIpsUnsupported(err)) return notRun(`the backend does not honour requestedIps (${describeError(err)}), so release cannot be observed`);
          problems.push(`after DEL of ${id}/eth0 on node ${node}, ${address} could not be handed out again: ${describeError(err)}`);
          continue;
        }
        if (firstAddress(result) !== address) problems.push(`after DEL of ${id}/eth0 on node ${node}, asking for ${address} gave ${firstAddress(result)}`);
        await agentOf(h, node).detach(ref(again.containerId));
      }
      return problems.length > 0 ? fail(summarizeProblems(problems)) : pass();
    },
  },
  {
    id: "cni.failed-add-leaks-nothing",
    section: "B",
    rule: "A failed ADD leaves nothing reserved: store contents and the node's dataplane are unchanged, and a later DEL succeeds.",
    source: `${SOURCES.cniAdd}; host-local/bridge tests 'failed ADD leaves no reservation'`,
    required: true,
    async run(env) {
      const { h, names } = await twoNodes(env, "cni.failed-add-leaks-nothing");
      const node = names[0];
      const held = await agentOf(h, node).attach(attachment("holder"));
      const heldAddress = firstAddress(held);
      if (!heldAddress) return fail(`ADD holder/eth0 on node ${node} returned no address`);
      const problems: string[] = [];
      const attempts: { label: string; pod: PodAttachment }[] = [
        { label: `asking for ${heldAddress}, held by holder/eth0`, pod: { ...attachment("fail-held"), requestedIps: [heldAddress] } },
        { label: "asking for 192.0.2.77, outside every pod range", pod: { ...attachment("fail-outside"), requestedIps: ["192.0.2.77"] } },
      ];
      for (const attempt of attempts) {
        const storeBefore = await storeContents(h.store);
        const dpBefore = JSON.stringify(canonicalDataplane(agentOf(h, node).dataplane()));
        const err = await thrown(() => agentOf(h, node).attach(attempt.pod));
        if (!err) {
          problems.push(`ADD ${key(attempt.pod)} on node ${node} ${attempt.label} succeeded; it must fail`);
          continue;
        }
        if (await storeContents(h.store) !== storeBefore) problems.push(`failed ADD ${key(attempt.pod)} (${attempt.label}) left a change in the cluster store`);
        if (JSON.stringify(canonicalDataplane(agentOf(h, node).dataplane())) !== dpBefore) {
          problems.push(`failed ADD ${key(attempt.pod)} (${attempt.label}) changed the dataplane of node ${node}`);
        }
        const delErr = await thrown(() => agentOf(h, node).detach(ref(attempt.pod.containerId)));
        if (delErr) problems.push(`DEL after the failed ADD ${key(attempt.pod)} threw ${describeError(delErr)}`);
      }
      const checkErr = await thrown(() => agentOf(h, node).check(ref("holder")));
      if (checkErr) problems.push(`after the failed ADDs, CHECK of holder/eth0 on node ${node} fails: ${describeError(checkErr)}`);
      return problems.length > 0 ? fail(summarizeProblems(problems)) : pass();
    },
  },
  {
    id: "cni.check-after-add",
    section: "B",
    rule: "CHECK right after ADD passes silently.",
    source: SOURCES.cniCheck,
    required: true,
    async run(env) {
      const { h, names } = await twoNodes(env, "cni.check-after-add");
      const problems: string[] = [];
      for (const node of names) {
        for (const id of [`chk-${node}-a`, `chk-${node}-b`]) {
          await agentOf(h, node).attach(attachment(id));
          const err = await thrown(() => agentOf(h, node).check(ref(id)));
          if (err) problems.push(`CHECK of ${id}/eth0 right after ADD on node ${node} failed: ${describeError(err)}`);
        }
      }
      return problems.length > 0 ? fail(summarizeProblems(problems)) : pass();
    },
  },
  {
    id: "cni.check-detects-missing",
    section: "B",
    rule: "CHECK fails (code 3 or 106) for an attachment that was never made or whose reservation is gone.",
    source: SOURCES.cniCheck,
    required: true,
    async run(env) {
      const { h, names } = await twoNodes(env, "cni.check-detects-missing");
      const node = names[0];
      const problems: string[] = [];
      const expectFailure = async (r: PodRef, why: string): Promise<void> => {
        const err = await thrown(() => agentOf(h, node).check(r));
        if (!err) problems.push(`CHECK of ${key(r)} on node ${node} passed although ${why}`);
        else if (errorCode(err) !== 3 && errorCode(err) !== 106) problems.push(`CHECK of ${key(r)} (${why}) failed with ${describeError(err)}; expected code 3 or 106`);
      };
      await expectFailure(ref("never-added"), "it was never added");
      await agentOf(h, node).attach(attachment("gone"));
      await agentOf(h, node).detach(ref("gone"));
      await expectFailure(ref("gone"), "it was deleted");
      return problems.length > 0 ? fail(summarizeProblems(problems)) : pass();
    },
  },
  {
    id: "cni.gc",
    section: "B",
    rule: "GC releases exactly the attachments not listed as valid, on that node only.",
    source: SOURCES.cniGc,
    required: true,
    async run(env) {
      const { h, names } = await twoNodes(env, "cni.gc");
      const [n1, n2] = names;
      const problems: string[] = [];
      const addr = new Map<string, string | undefined>();
      for (const id of ["gc-a", "gc-b", "gc-c"]) addr.set(id, firstAddress(await agentOf(h, n1).attach(attachment(id))));
      await agentOf(h, n2).attach(attachment("gc-other"));
      const err = await thrown(() => agentOf(h, n1).gc([ref("gc-a"), ref("gc-c")]));
      if (err) problems.push(`GC on node ${n1} threw ${describeError(err)}`);
      const keys = podKeysOf(h, n1);
      if (keys.includes("gc-b/eth0")) problems.push(`GC on node ${n1} kept gc-b/eth0, which was not listed as valid`);
      for (const id of ["gc-a", "gc-c"]) {
        if (!keys.includes(`${id}/eth0`)) problems.push(`GC on node ${n1} released ${id}/eth0, which was listed as valid`);
        const e = await thrown(() => agentOf(h, n1).check(ref(id)));
        if (e) problems.push(`after GC, CHECK of the valid ${id}/eth0 fails: ${describeError(e)}`);
      }
      if (!podKeysOf(h, n2).includes("gc-other/eth0")) problems.push(`GC on node ${n1} removed gc-other/eth0 from node ${n2}`);
      const b = addr.get("gc-b");
      if (b) {
        try {
          await agentOf(h, n1).attach({ ...attachment("gc-b-again"), requestedIps: [b] });
        } catch (e) {
          if (!requestedIpsUnsupported(e)) problems.push(`after GC released gc-b/eth0, its address ${b} could not be handed out again: ${describeError(e)}`);
        }
      }
      const e0 = await thrown(() => agentOf(h, n2).gc([]));
      if (e0) problems.push(`GC with an empty valid list on node ${n2} threw ${describeError(e0)}`);
      if (podKeysOf(h, n2).length !== 0) problems.push(`GC with an empty valid list left ${podKeysOf(h, n2).join(", ")} on node ${n2}`);
      return problems.length > 0 ? fail(summarizeProblems(problems)) : pass();
    },
  },
  {
    id: "cni.status",
    section: "B",
    rule: "STATUS says ready on a started agent, and not ready (50 or 51, with a reason) before start and after stop.",
    source: SOURCES.cniStatus,
    required: true,
    async run(env) {
      const { h, names } = await twoNodes(env, "cni.status");
      const node = names[0];
      const problems: string[] = [];
      const s = agentOf(h, node).status();
      if (!s.ready) problems.push(`STATUS of the started agent on node ${node} says not ready: ${s.reason ?? "(no reason)"}`);
      const old = agentOf(h, node);
      await h.cluster.restartAgent(node);
      const stopped = old.status();
      if (stopped.ready || (stopped.code !== 50 && stopped.code !== 51) || !stopped.reason) {
        problems.push(`STATUS of the stopped agent on node ${node} is ${JSON.stringify(stopped)}; expected ready false, code 50 or 51 and a reason`);
      }
      const fresh = agentOf(h, node).status();
      if (!fresh.ready) problems.push(`STATUS after restart on node ${node} says not ready: ${fresh.reason ?? "(no reason)"}`);
      const unstarted = standaloneAgent(env);
      const before = unstarted.status();
      if (before.ready || (before.code !== 50 && before.code !== 51) || !before.reason) {
        problems.push(`STATUS of an agent that was never started is ${JSON.stringify(before)}; expected ready false, code 50 or 51 and a reason`);
      }
      return problems.length > 0 ? fail(summarizeProblems(problems)) : pass();
    },
  },
  {
    id: "cni.error-codes",
    section: "B",
    rule: "Failures are CNI errors with the right code: 50 for ADD before start, 101 for a held requested address, 3/106 for CHECK of an unknown attachment, 7 for input that is not a config.",
    source: `${SOURCES.cniErrors}; ${SOURCES.contract}`,
    required: true,
    async run(env) {
      const problems: string[] = [];
      const expectCode = async (what: string, fn: () => unknown, codes: number[]): Promise<unknown> => {
        const err = await thrown(fn);
        if (!err) problems.push(`${what} succeeded; expected an error with code ${codes.join(" or ")}`);
        else if (!codes.includes(errorCode(err) ?? -1)) problems.push(`${what} threw ${describeError(err)}; expected code ${codes.join(" or ")}`);
        return err;
      };
      await expectCode("ADD before start", () => standaloneAgent(env).attach(attachment("early")), [50]);
      for (const input of [null, 42]) await expectCode(`parseConfig(${JSON.stringify(input)})`, () => env.backend.parseConfig(input), [7]);
      const { h, names } = await twoNodes(env, "cni.error-codes");
      const node = names[0];
      const held = firstAddress(await agentOf(h, node).attach(attachment("err-holder")));
      if (held) {
        const err = await thrown(() => agentOf(h, node).attach({ ...attachment("err-taker"), requestedIps: [held] }));
        if (!err) problems.push(`ADD asking for ${held}, held by err-holder/eth0 on node ${node}, succeeded`);
        else if (!requestedIpsUnsupported(err) && errorCode(err) !== 101) problems.push(`ADD asking for the held ${held} threw ${describeError(err)}; expected code 101`);
      }
      await expectCode(`CHECK of an unknown attachment on node ${node}`, () => agentOf(h, node).check(ref("err-unknown")), [3, 106]);
      return problems.length > 0 ? fail(summarizeProblems(problems)) : pass();
    },
  },
];

/** An agent made outside the simulator and never started (for STATUS and "ADD before start"). */
function standaloneAgent(env: CheckEnv): NodeAgent {
  const clock = new VirtualClock();
  const network = new MemoryNetwork({ clock, seed: env.seed });
  let state = env.seed >>> 0 || 1;
  return env.backend.createAgent({
    config: env.config,
    node: { name: "unstarted", underlay: [{ iface: "eth0", address: "198.51.100.250", prefixLength: 24, gateway: "198.51.100.1", mtu: 1500 }] },
    store: new MemoryDatastore({ clock }),
    local: new MemoryDatastore({ clock }),
    peers: network.transport("unstarted"),
    clock,
    log: silentLogger,
    random: () => {
      state = (Math.imul(state, 48271) >>> 0) % 2147483647;
      return state / 2147483647;
    },
  });
}
