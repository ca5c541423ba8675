/**
 * flannel's fixtures (`@cnikit/flannel/fixtures`), in the shape every backend's fixtures share
 * (`BackendFixtures` of @cnikit/core): net-conf.json as a user writes it, one config per mode the
 * backend is run with (vxlan, vxlan with DirectRouting, host-gw, dual stack, IPv6 only), and the
 * table of invalid configs: one per validation rule, each with the field its ConfigError names and
 * the rule (a part of the error's rule text); `refusedAt: "start"` rows parse, and a node's
 * `start()` on an IPv4-only underlay refuses them. Used by this package's tests, the registry
 * (@cnikit/backends), the main job and the conformance CLI (the `conformance` export).
 */
import { conformanceTables } from "@cnikit/core";
import type { BackendFixtures } from "@cnikit/core";

/**
 * The modes (`configs`), the invalid configs (`invalidConfigs`) and the configs just inside each
 * documented range boundary (`anchorConfigs`, each must be accepted).
 */
export const flannelFixtures: BackendFixtures<Record<string, unknown>> = {
  configs: [
    { label: "vxlan", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan" } } },
    { label: "vxlan-directrouting", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", DirectRouting: true } } },
    { label: "host-gw", config: { Network: "10.244.0.0/16", Backend: { Type: "host-gw" } } },
    // Dual stack over the suite's IPv4 underlay: vxlan carries IPv6 pods through flannel.<VNI> with
    // the peer's IPv4 VTEP (DESIGN.md "IPv6"), so every section sees two addresses per pod.
    { label: "vxlan-dualstack", config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00:10:244::/56", Backend: { Type: "vxlan" } } },
    // IPv6 only over an IPv6 underlay: flannel's own IPv6 path (flannel-v6.<VNI>, the node's IPv6
    // address as VTEP, 70 bytes of overhead), which the dual-stack config does not take.
    { label: "vxlan-ipv6-only", config: { EnableIPv4: false, EnableIPv6: true, IPv6Network: "fd00:10:244::/56", Backend: { Type: "vxlan" } }, underlayFamily: 6 },
  ],
  invalidConfigs: [
    // flannel's CheckNetworkConfig, in its order
    { label: "Network missing", config: { Backend: { Type: "vxlan" } }, field: "Network", rule: "please define a correct Network parameter in the flannel config" },
    { label: "Network 0.0.0.0/0 (Go's empty IP4Net)", config: { Network: "0.0.0.0/0" }, field: "Network", rule: "please define a correct Network parameter in the flannel config" },
    { label: "SubnetLen 31", config: { Network: "10.244.0.0/16", SubnetLen: 31 }, field: "SubnetLen", rule: "SubnetLen must be less than /31" },
    { label: "SubnetLen leaves fewer than four subnets", config: { Network: "10.244.0.0/16", SubnetLen: 17 }, field: "SubnetLen", rule: "network must be able to accommodate at least four subnets" },
    { label: "Network smaller than /28 without SubnetLen", config: { Network: "10.244.0.0/29" }, field: "Network", rule: "network is too small. Minimum useful network prefix is /28" },
    { label: "SubnetMin outside Network", config: { Network: "10.244.0.0/16", SubnetMin: "10.245.1.0" }, field: "SubnetMin", rule: "SubnetMin is not in the range of the Network" },
    { label: "SubnetMax outside Network", config: { Network: "10.244.0.0/16", SubnetMax: "10.245.255.0" }, field: "SubnetMax", rule: "SubnetMax is not in the range of the Network" },
    {
      label: "SubnetMin not on a SubnetLen boundary",
      config: { Network: "10.244.0.0/16", SubnetMin: "10.244.1.128" },
      field: "SubnetMin",
      rule: "SubnetMin is not on a SubnetLen boundary: 10.244.1.128",
    },
    {
      label: "SubnetMax not on a SubnetLen boundary",
      config: { Network: "10.244.0.0/16", SubnetMax: "10.244.200.7" },
      field: "SubnetMax",
      rule: "SubnetMax is not on a SubnetLen boundary: 10.244.200.7",
    },
    { label: "IPv6Network missing", config: { Network: "10.244.0.0/16", EnableIPv6: true }, field: "IPv6Network", rule: "please define a correct IPv6Network parameter in the flannel config" },
    {
      label: "IPv6SubnetLen 127",
      config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/48", IPv6SubnetLen: 127 },
      field: "IPv6SubnetLen",
      rule: "SubnetLen must be less than /127",
    },
    {
      label: "IPv6SubnetLen leaves fewer than four subnets",
      config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/48", IPv6SubnetLen: 49 },
      field: "IPv6SubnetLen",
      rule: "network must be able to accommodate at least four subnets",
    },
    {
      label: "IPv6Network smaller than /124 without IPv6SubnetLen",
      config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/125" },
      field: "IPv6Network",
      rule: "IPv6Network is too small. Minimum useful network prefix is /124",
    },
    {
      label: "IPv6SubnetMin outside IPv6Network",
      config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/48", IPv6SubnetMin: "fd01::" },
      field: "IPv6SubnetMin",
      rule: "IPv6SubnetMin is not in the range of the IPv6Network",
    },
    {
      label: "IPv6SubnetMax outside IPv6Network",
      config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/48", IPv6SubnetMax: "fd01::" },
      field: "IPv6SubnetMax",
      rule: "IPv6SubnetMax is not in the range of the IPv6Network",
    },
    {
      label: "IPv6SubnetMin not on a boundary",
      config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/48", IPv6SubnetMin: "fd00:0:0:1::1" },
      field: "IPv6SubnetMin",
      rule: "IPv6SubnetMin is not on a SubnetLen boundary: fd00:0:0:1::1",
    },
    {
      label: "IPv6SubnetMax not on a boundary",
      config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/48", IPv6SubnetMax: "fd00:0:0:ff::1" },
      field: "IPv6SubnetMax",
      rule: "IPv6SubnetMax is not on a SubnetLen boundary: fd00:0:0:ff::1",
    },
    // what flannel lets through
    { label: "typo SubnetLength (unknown key)", config: { Network: "10.244.0.0/16", SubnetLength: 26 }, field: "SubnetLength", rule: 'unknown key "SubnetLength" in net-conf.json' },
    {
      label: "unknown key inside Backend",
      config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", Vni: 1, DirectRoute: true } },
      field: "Backend.DirectRoute",
      rule: 'unknown key "DirectRoute" in Backend',
    },
    {
      label: "SubnetMin above SubnetMax",
      config: { Network: "10.244.0.0/16", SubnetMin: "10.244.200.0", SubnetMax: "10.244.100.0" },
      field: "SubnetMin",
      rule: "SubnetMin 10.244.200.0 is above SubnetMax 10.244.100.0: no subnet could ever be leased",
    },
    {
      label: "IPv6SubnetMin above IPv6SubnetMax",
      config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/48", IPv6SubnetMin: "fd00:0:0:9::", IPv6SubnetMax: "fd00:0:0:2::" },
      field: "IPv6SubnetMin",
      rule: "IPv6SubnetMin fd00:0:0:9:: is above IPv6SubnetMax fd00:0:0:2::: no subnet could ever be leased",
    },
    { label: "same key twice in two spellings", config: { Network: "10.244.0.0/16", network: "10.245.0.0/16" }, field: "Network", rule: 'given twice, as "Network" and "network"' },
    { label: "neither family enabled", config: { EnableIPv4: false, EnableIPv6: false }, field: "EnableIPv4", rule: "at least one of EnableIPv4 and EnableIPv6 must be true" },
    {
      label: "Network is IPv6",
      config: { Network: "fd00::/48" },
      field: "Network",
      rule: "please define a correct Network parameter in the flannel config: Network must be an IPv4 CIDR such as 10.244.0.0/16",
    },
    {
      label: "Network not a CIDR",
      config: { Network: "10.244.0.0" },
      field: "Network",
      rule: "please define a correct Network parameter in the flannel config: must be in CIDR notation address/length, e.g. 10.244.0.0/16",
    },
    { label: "SubnetLen not a number", config: { Network: "10.244.0.0/16", SubnetLen: "24" }, field: "SubnetLen", rule: "must be a whole number ≥ 0" },
    { label: "SubnetMin not an address", config: { Network: "10.244.0.0/16", SubnetMin: "ten" }, field: "SubnetMin", rule: "must be a valid IPv4" },
    { label: "EnableIPv6 not a boolean", config: { Network: "10.244.0.0/16", EnableIPv6: "yes" }, field: "EnableIPv6", rule: "must be true or false" },
    { label: "Networks (multi-CIDR) not supported", config: { Networks: ["10.244.0.0/16"] }, field: "Networks", rule: "is not supported" },
    // Backend
    { label: "Backend not an object", config: { Network: "10.244.0.0/16", Backend: "vxlan" }, field: "Backend", rule: 'must be an object such as {"Type": "vxlan"}' },
    { label: "Backend without Type", config: { Network: "10.244.0.0/16", Backend: {} }, field: "Backend.Type", rule: "unknown backend type" },
    { label: "unknown backend type", config: { Network: "10.244.0.0/16", Backend: { Type: "geneve" } }, field: "Backend.Type", rule: "unknown backend type: geneve" },
    { label: "udp not supported", config: { Network: "10.244.0.0/16", Backend: { Type: "udp" } }, field: "Backend.Type", rule: 'backend type "udp" is not supported' },
    { label: "ipsec not supported", config: { Network: "10.244.0.0/16", Backend: { Type: "ipsec", PSK: "x".repeat(96) } }, field: "Backend.Type", rule: 'backend type "ipsec" is not supported' },
    { label: "wireguard not supported", config: { Network: "10.244.0.0/16", Backend: { Type: "wireguard" } }, field: "Backend.Type", rule: 'backend type "wireguard" is not supported' },
    { label: "alloc not supported", config: { Network: "10.244.0.0/16", Backend: { Type: "alloc" } }, field: "Backend.Type", rule: 'backend type "alloc" is not supported' },
    { label: "VNI above 24 bits", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", VNI: 16777216 } }, field: "Backend.VNI", rule: "must be from 0 to 16777215" },
    { label: "Port above 65535", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", Port: 70000 } }, field: "Backend.Port", rule: "must be from 0 to 65535" },
    { label: "MTU leaves pods below 576", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", MTU: 600 } }, field: "Backend.MTU", rule: "must be at least 626: pods get MTU − 50" },
    { label: "DirectRouting not a boolean", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", DirectRouting: "true" } }, field: "Backend.DirectRouting", rule: "must be true or false" },
    { label: "host-gw takes no VNI", config: { Network: "10.244.0.0/16", Backend: { Type: "host-gw", VNI: 1 } }, field: "Backend.VNI", rule: 'unknown key "VNI" in Backend' },
    // cnikit extension keys
    { label: "IPMasq not a boolean", config: { Network: "10.244.0.0/16", IPMasq: "true" }, field: "IPMasq", rule: "must be true or false" },
    {
      label: "SubnetLeaseRenewMargin out of 1..1439",
      config: { Network: "10.244.0.0/16", SubnetLeaseRenewMargin: 1440 },
      field: "SubnetLeaseRenewMargin",
      rule: "Invalid subnet-lease-renew-margin option, out of acceptable range: whole minutes from 1 to 1439",
    },
    // Just outside each documented range boundary (anchorConfigs holds the side just inside).
    { label: "SubnetLen 31 with a /8 Network (max 30)", config: { Network: "10.0.0.0/8", SubnetLen: 31 }, field: "SubnetLen", rule: "SubnetLen must be less than /31" },
    { label: "SubnetLen one short of Network + 2", config: { Network: "10.244.0.0/20", SubnetLen: 21 }, field: "SubnetLen", rule: "network must be able to accommodate at least four subnets" },
    { label: "SubnetMin one subnet past the end of Network", config: { Network: "10.244.0.0/16", SubnetMin: "10.245.0.0" }, field: "SubnetMin", rule: "SubnetMin is not in the range of the Network" },
    { label: "SubnetMin one subnet below Network", config: { Network: "10.244.0.0/16", SubnetMin: "10.243.255.0" }, field: "SubnetMin", rule: "SubnetMin is not in the range of the Network" },
    { label: "SubnetMax one subnet past the end of Network", config: { Network: "10.244.0.0/16", SubnetMax: "10.245.0.0" }, field: "SubnetMax", rule: "SubnetMax is not in the range of the Network" },
    {
      label: "SubnetMin one subnet above SubnetMax",
      config: { Network: "10.244.0.0/16", SubnetMin: "10.244.11.0", SubnetMax: "10.244.10.0" },
      field: "SubnetMin",
      rule: "SubnetMin 10.244.11.0 is above SubnetMax 10.244.10.0: no subnet could ever be leased",
    },
    {
      label: "IPv6SubnetLen one short of IPv6Network + 2",
      config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/60", IPv6SubnetLen: 61 },
      field: "IPv6SubnetLen",
      rule: "network must be able to accommodate at least four subnets",
    },
    {
      label: "IPv6SubnetMax one subnet past IPv6Network",
      config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/48", IPv6SubnetMax: "fd00:0:1::" },
      field: "IPv6SubnetMax",
      rule: "IPv6SubnetMax is not in the range of the IPv6Network",
    },
    { label: "VNI 16777216 (one above 24 bits)", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", VNI: 16_777_216 } }, field: "Backend.VNI", rule: "must be from 0 to 16777215" },
    { label: "VNI -1", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", VNI: -1 } }, field: "Backend.VNI", rule: "must be from 0 to 16777215" },
    { label: "Port 65536 (one above 65535)", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", Port: 65_536 } }, field: "Backend.Port", rule: "must be from 0 to 65535" },
    { label: "Port -1", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", Port: -1 } }, field: "Backend.Port", rule: "must be from 0 to 65535" },
    {
      label: "MTU 625 (pods would get 575, below IPv4's 576)",
      config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", MTU: 625 } },
      field: "Backend.MTU",
      rule: "must be at least 626: pods get MTU − 50",
    },
    { label: "MTU 9217 (one above 9216)", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", MTU: 9217 } }, field: "Backend.MTU", rule: "must be from 0 to 9216" },
    {
      label: "dual-stack MTU 1329 (pods would get 1279, below IPv6's 1280)",
      config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/48", Backend: { Type: "vxlan", MTU: 1329 } },
      field: "Backend.MTU",
      rule: "must be at least 1330: pods get MTU − 50",
    },
    {
      label: "SubnetLeaseRenewMargin 0 (one below 1)",
      config: { Network: "10.244.0.0/16", SubnetLeaseRenewMargin: 0 },
      field: "SubnetLeaseRenewMargin",
      rule: "Invalid subnet-lease-renew-margin option, out of acceptable range: whole minutes from 1 to 1439",
    },
    // Valid as a config, refused when a node starts: the node has no IPv6 underlay address.
    {
      label: "host-gw dual stack on a node without an IPv6 underlay (refused at node start)",
      config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00:10:244::/56", Backend: { Type: "host-gw" } },
      field: "node.underlay",
      rule: "host-gw with EnableIPv6 needs an IPv6 underlay address on every node",
      refusedAt: "start",
    },
  ],
  // Just inside each documented range boundary: each must be accepted (config.accepts-anchor-format).
  anchorConfigs: [
    { label: "stock kube-flannel net-conf.json", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan" } } },
    { label: "SubnetLen 30 (the maximum)", config: { Network: "10.0.0.0/8", SubnetLen: 30 } },
    { label: "SubnetLen Network + 2 (four subnets)", config: { Network: "10.244.0.0/20", SubnetLen: 22 } },
    { label: "Network /28 without SubnetLen", config: { Network: "10.244.0.0/28" } },
    { label: "SubnetMin at the start of Network", config: { Network: "10.244.0.0/16", SubnetMin: "10.244.0.0" } },
    { label: "SubnetMax the last subnet of Network", config: { Network: "10.244.0.0/16", SubnetMax: "10.244.255.0" } },
    { label: "SubnetMin equal to SubnetMax", config: { Network: "10.244.0.0/16", SubnetMin: "10.244.10.0", SubnetMax: "10.244.10.0" } },
    { label: "IPv6SubnetLen 126 (the maximum)", config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/48", IPv6SubnetLen: 126 } },
    { label: "IPv6SubnetLen IPv6Network + 2", config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/60", IPv6SubnetLen: 62 } },
    { label: "IPv6Network /124 without IPv6SubnetLen", config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/124" } },
    { label: "IPv6SubnetMax the last subnet of IPv6Network", config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/48", IPv6SubnetMax: "fd00:0:0:ffff::" } },
    { label: "IPv6 only", config: { EnableIPv4: false, EnableIPv6: true, IPv6Network: "fd00::/48" } },
    { label: "VNI 0", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", VNI: 0 } } },
    { label: "VNI 16777215 (the largest 24-bit value)", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", VNI: 16_777_215 } } },
    { label: "Port 0 (the kernel default 8472)", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", Port: 0 } } },
    { label: "Port 65535", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", Port: 65_535 } } },
    { label: "MTU 626 (pods get 576)", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", MTU: 626 } } },
    { label: "MTU 9216 (the maximum)", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", MTU: 9216 } } },
    { label: "dual-stack MTU 1330 (pods get 1280)", config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/48", Backend: { Type: "vxlan", MTU: 1330 } } },
    { label: "SubnetLeaseRenewMargin 1 and keys in Go's case-insensitive spelling", config: { network: "10.244.0.0/16", subnetleaserenewmargin: 1 } },
    { label: "SubnetLeaseRenewMargin 1439 (the maximum)", config: { Network: "10.244.0.0/16", SubnetLeaseRenewMargin: 1439 } },
  ],
};

/**
 * flannel's section-C tables under the export name the conformance CLI looks for in a backend's
 * module (`conformance`): found without --invalid-configs.
 */
export const conformance = conformanceTables(flannelFixtures);
