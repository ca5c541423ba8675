import { describe, expect, it } from "vitest";
import { emptyDataplane, type NodeDataplane, type PodInterface } from "@cnikit/core";
import { parseTableHash, renderNftTable } from "../src/index.ts";

function pod(key: string, hostIf: string, address: string, bridge?: string): PodInterface {
  return { key, containerId: key, ifName: "eth0", netns: "/x", hostIf, mac: "02:00:00:00:00:01", mtu: 1500, addresses: [address], routes: [], ...(bridge ? { bridge } : {}) };
}

function body(dp: NodeDataplane): string[] {
  const t = renderNftTable({ owner: "t", dp });
  return (t?.text ?? "").split("\n").map((l) => l.trim());
}

describe("renderNftTable", () => {
  it("no NAT and no filters: no table", () => {
    expect(renderNftTable({ owner: "t", dp: emptyDataplane("n") })).toBeUndefined();
  });

  const natCases: { label: string; nat: NodeDataplane["nat"]; lines: string[] }[] = [
    {
      label: "flannel masquerade, overlapping excepts merged",
      nat: [{ id: "flannel/ip-masq-v4", kind: "masquerade", sources: ["10.244.0.0/16"], exceptDestinations: ["10.244.0.0/16", "10.244.3.0/24", "224.0.0.0/4"], randomFully: true }],
      lines: ['ip saddr { 10.244.0.0/16 } ip daddr != { 10.244.0.0/16, 224.0.0.0/4 } masquerade fully-random comment "flannel/ip-masq-v4"'],
    },
    {
      label: "dual-stack sources split per family, outDev",
      nat: [{ id: "m", kind: "masquerade", sources: ["10.0.0.0/8", "fd00::/48"], exceptDestinations: ["fd00::/48"], outDev: "eth0" }],
      lines: ['ip saddr { 10.0.0.0/8 } oifname "eth0" masquerade comment "m"', 'ip6 saddr { fd00::/48 } ip6 daddr != { fd00::/48 } oifname "eth0" masquerade comment "m"'],
    },
    {
      label: "snat to an address of the source family only",
      nat: [{ id: "s", kind: "snat", sources: ["10.0.0.0/8", "fd00::/48"], exceptDestinations: [], toAddress: "192.168.0.1" }],
      lines: ['ip saddr { 10.0.0.0/8 } snat ip to 192.168.0.1 comment "s"'],
    },
  ];
  it.each(natCases)("NAT: $label", ({ nat, lines }) => {
    const out = body({ ...emptyDataplane("n"), nat });
    const i = out.indexOf("type nat hook postrouting priority srcnat; policy accept;");
    expect(i).toBeGreaterThan(0);
    expect(out.slice(i + 1, i + 1 + lines.length)).toEqual(lines);
  });

  it("filters: routed pods dispatch by host veth, bridged pods by address; accept returns, default drop at the end", () => {
    const dp: NodeDataplane = {
      ...emptyDataplane("n"),
      pods: [pod("a", "cali1", "10.1.0.2/32"), pod("b", "veth2", "10.2.0.2/24", "cni0")],
      filters: [
        {
          pod: "a",
          direction: "ingress",
          defaultAction: "drop",
          rules: [
            {
              id: "r0",
              action: "accept",
              peers: [{ cidrs: ["10.0.0.0/8"], except: ["10.1.0.0/16"] }],
              protocol: "tcp",
              ports: [
                { from: 80, to: 80 },
                { from: 81, to: 90 },
              ],
            },
          ],
        },
        {
          pod: "b",
          direction: "egress",
          defaultAction: "accept",
          rules: [
            { id: "r1", action: "drop", ports: [{ from: 53, to: 53 }] },
            { id: "r2", action: "drop", protocol: "icmp" },
          ],
        },
        { pod: "gone", direction: "ingress", defaultAction: "drop", rules: [] },
      ],
    };
    const out = body(dp);
    expect(out).toContain('ip saddr { 10.0.0.0/16, 10.2.0.0-10.255.255.255 } meta l4proto tcp th dport { 80-90 } return comment "r0"');
    expect(out).toContain('drop comment "a ingress default"');
    expect(out).toContain('meta l4proto { tcp, udp, sctp } th dport { 53 } drop comment "r1"');
    expect(out).toContain('meta l4proto { icmp, ipv6-icmp } drop comment "r1"');
    expect(out).toContain('meta l4proto { icmp, ipv6-icmp } drop comment "r2"');
    expect(out).toContain('oifname vmap { "cali1" : jump pod-0-ingress }');
    expect(out).toContain("ip saddr vmap { 10.2.0.2 : jump pod-1-egress }");
    expect(out.filter((l) => l === "ct state established,related accept")).toHaveLength(2);
    expect(out.join("\n")).not.toContain("gone");
  });

  it("a rule whose peers are all excepted matches nothing and is left out", () => {
    const dp: NodeDataplane = {
      ...emptyDataplane("n"),
      pods: [pod("a", "cali1", "10.1.0.2/32")],
      filters: [{ pod: "a", direction: "ingress", defaultAction: "drop", rules: [{ id: "none", action: "accept", peers: [{ cidrs: ["10.0.0.0/8"], except: ["0.0.0.0/0"] }] }] }],
    };
    expect(body(dp).join("\n")).not.toContain('"none"');
  });

  it("the hash in the comment changes with the content and is read back from a listing", () => {
    const a = renderNftTable({ owner: "t", dp: { ...emptyDataplane("n"), nat: [{ id: "m", kind: "masquerade", sources: ["10.0.0.0/8"], exceptDestinations: [] }] } })!;
    const b = renderNftTable({ owner: "t", dp: { ...emptyDataplane("n"), nat: [{ id: "m", kind: "masquerade", sources: ["10.0.0.0/9"], exceptDestinations: [] }] } })!;
    expect(a.hash).not.toBe(b.hash);
    expect(parseTableHash(a.text, "t")).toBe(a.hash);
    expect(parseTableHash(a.text, "other")).toBeUndefined();
  });
});
