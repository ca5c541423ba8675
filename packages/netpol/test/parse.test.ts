// Table-driven: what the API server accepts (with its defaults) and what it refuses, by field
// path and rule; documents, List kinds and JSON; the cluster view.
import { ConfigError } from "@cnikit/core";
import { describe, expect, it } from "vitest";
import { parseCluster, parsePolicies } from "../src/index.ts";

function np(spec: string, meta = "{name: p, namespace: x}"): string {
  return `apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: ${meta}\nspec: ${spec}\n`;
}

function refusal(text: string): ConfigError {
  try {
    parsePolicies(text, "t.yaml");
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

describe("parsePolicies: refusals name the field path and the rule", () => {
  const table: { name: string; text: string; field: string; rule: RegExp }[] = [
    {
      name: "except outside cidr",
      text: np("{podSelector: {}, ingress: [{from: [{podSelector: {}}, {ipBlock: {cidr: 10.0.0.0/16, except: [10.1.0.0/24]}}]}]}"),
      field: "spec.ingress[0].from[1].ipBlock.except[0]",
      rule: /must be a strict subset of `cidr`/,
    },
    {
      name: "except equal to cidr (not a strict subset)",
      text: np("{podSelector: {}, egress: [{to: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.0.0/16]}}]}]}"),
      field: "spec.egress[0].to[0].ipBlock.except[0]",
      rule: /strict subset/,
    },
    {
      name: "except of another family",
      text: np("{podSelector: {}, egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8, except: ['fd00::/64']}}]}]}"),
      field: "spec.egress[0].to[0].ipBlock.except[0]",
      rule: /strict subset/,
    },
    { name: "invalid cidr", text: np("{podSelector: {}, egress: [{to: [{ipBlock: {cidr: 10.0.0.0/33}}]}]}"), field: "spec.egress[0].to[0].ipBlock.cidr", rule: /must be a valid CIDR/ },
    { name: "missing cidr", text: np("{podSelector: {}, egress: [{to: [{ipBlock: {except: []}}]}]}"), field: "spec.egress[0].to[0].ipBlock.cidr", rule: /Required value/ },
    { name: "invalid except", text: np("{podSelector: {}, egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8, except: [banana]}}]}]}"), field: "spec.egress[0].to[0].ipBlock.except[0]", rule: /valid CIDR/ },
    {
      name: "ipBlock with a selector in one peer",
      text: np("{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]}]}"),
      field: "spec.ingress[0].from[0]",
      rule: /may not specify both ipBlock and another peer/,
    },
    { name: "an empty peer", text: np("{podSelector: {}, ingress: [{from: [{}]}]}"), field: "spec.ingress[0].from[0]", rule: /must specify a peer/ },
    { name: "port 0", text: np("{podSelector: {}, ingress: [{ports: [{port: 0}]}]}"), field: "spec.ingress[0].ports[0].port", rule: /between 1 and 65535/ },
    { name: "port 65536", text: np("{podSelector: {}, ingress: [{ports: [{port: 65536}]}]}"), field: "spec.ingress[0].ports[0].port", rule: /between 1 and 65535/ },
    { name: "upper-case port name", text: np("{podSelector: {}, ingress: [{ports: [{port: HTTP}]}]}"), field: "spec.ingress[0].ports[0].port", rule: /alpha-numeric characters \(a-z, 0-9\)/ },
    { name: "digits-only port name (a quoted number)", text: np("{podSelector: {}, ingress: [{ports: [{port: '80'}]}]}"), field: "spec.ingress[0].ports[0].port", rule: /at least one letter/ },
    { name: "port name with consecutive hyphens", text: np("{podSelector: {}, ingress: [{ports: [{port: web--x}]}]}"), field: "spec.ingress[0].ports[0].port", rule: /consecutive hyphens/ },
    { name: "port name too long", text: np("{podSelector: {}, ingress: [{ports: [{port: abcdefghijklmnop}]}]}"), field: "spec.ingress[0].ports[0].port", rule: /no more than 15/ },
    { name: "port name with a leading hyphen", text: np("{podSelector: {}, ingress: [{ports: [{port: -web}]}]}"), field: "spec.ingress[0].ports[0].port", rule: /begin or end with a hyphen/ },
    {
      name: "endPort without port",
      text: np("{podSelector: {}, ingress: [{ports: [{endPort: 90}]}]}"),
      field: "spec.ingress[0].ports[0].port",
      rule: /Required value: must be specified when endPort/,
    },
    {
      name: "endPort with a named port",
      text: np("{podSelector: {}, ingress: [{ports: [{port: web, endPort: 90}]}]}"),
      field: "spec.ingress[0].ports[0].endPort",
      rule: /may not be specified when `port` is non-numeric/,
    },
    { name: "endPort below port", text: np("{podSelector: {}, egress: [{ports: [{port: 90, endPort: 80}]}]}"), field: "spec.egress[0].ports[0].endPort", rule: /greater than or equal to `port`/ },
    { name: "endPort out of range", text: np("{podSelector: {}, egress: [{ports: [{port: 90, endPort: 70000}]}]}"), field: "spec.egress[0].ports[0].endPort", rule: /between 1 and 65535/ },
    {
      name: "protocol ICMP",
      text: np("{podSelector: {}, ingress: [{ports: [{protocol: ICMP, port: 80}]}]}"),
      field: "spec.ingress[0].ports[0].protocol",
      rule: /Unsupported value: supported values: "SCTP", "TCP", "UDP"/,
    },
    { name: "protocol in lower case", text: np("{podSelector: {}, ingress: [{ports: [{protocol: tcp}]}]}"), field: "spec.ingress[0].ports[0].protocol", rule: /Unsupported value/ },
    { name: "unknown policyType", text: np("{podSelector: {}, policyTypes: [Ingress, Foo]}"), field: "spec.policyTypes[1]", rule: /Unsupported value: supported values: "Ingress", "Egress"/ },
    { name: "three policyTypes", text: np("{podSelector: {}, policyTypes: [Ingress, Egress, Ingress]}"), field: "spec.policyTypes", rule: /may not specify more than two policyTypes/ },
    {
      name: "In without values",
      text: np("{podSelector: {matchExpressions: [{key: pod, operator: In}]}}"),
      field: "spec.podSelector.matchExpressions[0].values",
      rule: /must be specified when `operator` is 'In' or 'NotIn'/,
    },
    {
      name: "NotIn with an empty list",
      text: np("{podSelector: {matchExpressions: [{key: pod, operator: NotIn, values: []}]}}"),
      field: "spec.podSelector.matchExpressions[0].values",
      rule: /Required value/,
    },
    {
      name: "Exists with values",
      text: np("{podSelector: {}, ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: ns, operator: Exists, values: [x]}]}}]}]}"),
      field: "spec.ingress[0].from[0].namespaceSelector.matchExpressions[0].values",
      rule: /may not be specified when `operator` is 'Exists' or 'DoesNotExist'/,
    },
    {
      name: "unknown operator",
      text: np("{podSelector: {matchExpressions: [{key: pod, operator: Equals, values: [a]}]}}"),
      field: "spec.podSelector.matchExpressions[0].operator",
      rule: /Unsupported value/,
    },
    { name: "invalid selector key", text: np("{podSelector: {matchExpressions: [{key: -pod, operator: Exists}]}}"), field: "spec.podSelector.matchExpressions[0].key", rule: /alphanumeric/ },
    { name: "invalid label key in matchLabels", text: np("{podSelector: {matchLabels: {'a/b/c': x}}}"), field: "spec.podSelector.matchLabels", rule: /separated by one '\/'/ },
    { name: "invalid label value", text: np("{podSelector: {matchLabels: {app: 'a b'}}}"), field: "spec.podSelector.matchLabels.app", rule: /valid label value/ },
    { name: "label value too long", text: np(`{podSelector: {matchLabels: {app: ${"a".repeat(64)}}}}`), field: "spec.podSelector.matchLabels.app", rule: /no more than 63/ },
    { name: "a non-string label value", text: np("{podSelector: {matchLabels: {app: true}}}"), field: "spec.podSelector.matchLabels.app", rule: /must be a string/ },
    { name: "unknown field in spec", text: np("{podSelector: {}, ingres: []}"), field: "spec.ingres", rule: /unknown field "ingres"/ },
    { name: "unknown field in a rule", text: np("{podSelector: {}, ingress: [{to: []}]}"), field: "spec.ingress[0].to", rule: /unknown field "to"/ },
    { name: "ports not a list", text: np("{podSelector: {}, ingress: [{ports: 80}]}"), field: "spec.ingress[0].ports", rule: /must be a list/ },
    { name: "missing name", text: np("{podSelector: {}}", "{namespace: x}"), field: "metadata.name", rule: /Required value/ },
    { name: "invalid name", text: np("{podSelector: {}}", "{name: Bad_Name, namespace: x}"), field: "metadata.name", rule: /RFC 1123 subdomain/ },
    { name: "invalid namespace", text: np("{podSelector: {}}", "{name: p, namespace: my.ns}"), field: "metadata.namespace", rule: /RFC 1123 label/ },
    { name: "wrong kind", text: "apiVersion: networking.k8s.io/v1\nkind: Pod\nmetadata: {name: p}\nspec: {}\n", field: "kind", rule: /must be "NetworkPolicy"/ },
    { name: "wrong apiVersion", text: "apiVersion: extensions/v1beta1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec: {}\n", field: "apiVersion", rule: /networking.k8s.io\/v1/ },
    { name: "missing spec", text: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\n", field: "spec", rule: /Required value/ },
    { name: "YAML syntax error", text: "apiVersion: [\n", field: "(document)", rule: /not valid YAML/ },
    { name: "the same name twice in one namespace", text: `${np("{podSelector: {}}")}---\n${np("{podSelector: {}}")}`, field: "metadata.name", rule: /appears twice/ },
  ];
  for (const t of table) {
    it(t.name, () => {
      const err = refusal(t.text);
      expect(err.field).toBe(t.field);
      expect(err.rule).toMatch(t.rule);
      expect(err.message).toContain("[netpol t.yaml#");
    });
  }

  it("reports every problem of an object, first one as the field", () => {
    const err = refusal(np("{podSelector: {}, ingress: [{ports: [{port: 0}, {protocol: ICMP}]}], policyTypes: [Bogus]}"));
    expect(err.field).toBe("spec.ingress[0].ports[0].port");
    expect(err.rule).toContain("spec.ingress[0].ports[1].protocol");
    expect(err.rule).toContain("spec.policyTypes[0]");
  });

  it("names the document and list item in the component", () => {
    const list = `apiVersion: v1\nkind: List\nitems:\n- ${np("{podSelector: {}}").split("\n").join("\n  ")}\n- apiVersion: networking.k8s.io/v1\n  kind: NetworkPolicy\n  metadata: {name: q}\n  spec: {ingress: [{ports: [{port: 0}]}]}\n`;
    const err = refusal(list);
    expect(err.component).toContain("t.yaml#1 items[1]");
    expect(err.component).toContain("default/q");
  });
});

describe("parsePolicies: accepted objects and the API server's defaults", () => {
  it("defaults namespace, protocol and policyTypes; keeps ports and endPort", () => {
    const [p] = parsePolicies(np("{ingress: [{ports: [{port: 80, endPort: 90}, {port: web}, {protocol: UDP}]}]}", "{name: p}"));
    expect(p!.namespace).toBe("default");
    expect(p!.podSelector).toEqual({ matchLabels: {}, matchExpressions: [] });
    expect(p!.policyTypes).toEqual(["Ingress"]);
    expect(p!.policyTypesDefaulted).toBe(true);
    expect(p!.ingress[0]!.ports).toEqual([{ protocol: "TCP", port: 80, endPort: 90 }, { protocol: "TCP", port: "web" }, { protocol: "UDP" }]);
    expect(p!.ingress[0]!.peers).toEqual([]);
  });

  const types: { spec: string; want: string[] }[] = [
    { spec: "{podSelector: {}}", want: ["Ingress"] },
    { spec: "{podSelector: {}, egress: [{}]}", want: ["Ingress", "Egress"] },
    { spec: "{podSelector: {}, egress: []}", want: ["Ingress"] },
    { spec: "{podSelector: {}, policyTypes: [], egress: [{}]}", want: ["Ingress", "Egress"] },
    { spec: "{podSelector: {}, policyTypes: [Egress]}", want: ["Egress"] },
    { spec: "{podSelector: {}, policyTypes: [Egress, Ingress]}", want: ["Ingress", "Egress"] },
    { spec: "{podSelector: {}, policyTypes: [Ingress], egress: [{}]}", want: ["Ingress"] },
  ];
  for (const t of types) {
    it(`effective policyTypes of ${t.spec}`, () => {
      expect(parsePolicies(np(t.spec))[0]!.policyTypes).toEqual(t.want);
    });
  }

  it("keeps an empty rule list apart from a list with one empty rule", () => {
    const [deny] = parsePolicies(np("{podSelector: {}, ingress: []}"));
    const [allow] = parsePolicies(np("{podSelector: {}, ingress: [{}]}"));
    const [nulls] = parsePolicies(np("{podSelector: {}, ingress: [{from: null, ports: null}]}"));
    expect(deny!.ingress).toEqual([]);
    expect(allow!.ingress).toEqual([{ peers: [], ports: [] }]);
    expect(nulls!.ingress).toEqual([{ peers: [], ports: [] }]);
  });

  it("accepts host bits in ipBlock cidr as the API server does, and IPv6 blocks", () => {
    const [p] = parsePolicies(np("{podSelector: {}, egress: [{to: [{ipBlock: {cidr: 10.0.0.1/8, except: [10.1.0.0/16]}}, {ipBlock: {cidr: 'fd00::/48', except: ['fd00:0:0:1::/64']}}]}]}"));
    expect(p!.egress[0]!.peers.map((x) => x.ipBlock)).toEqual([
      { cidr: "10.0.0.1/8", except: ["10.1.0.0/16"] },
      { cidr: "fd00::/48", except: ["fd00:0:0:1::/64"] },
    ]);
  });

  it("reads JSON, multi-document YAML (skipping empty documents) and List kinds in order", () => {
    const json = JSON.stringify({ apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name: "j", namespace: "y" }, spec: { podSelector: {} } });
    expect(parsePolicies(json).map((p) => p.name)).toEqual(["j"]);
    const multi = `${np("{podSelector: {}}", "{name: one, namespace: x}")}---\n---\n${np("{podSelector: {}}", "{name: two, namespace: x}")}`;
    expect(parsePolicies(multi).map((p) => p.name)).toEqual(["one", "two"]);
    const list = JSON.stringify({ apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicyList", items: [JSON.parse(json), { ...JSON.parse(json), metadata: { name: "k", namespace: "y" } }] });
    expect(parsePolicies(list).map((p) => `${p.namespace}/${p.name}`)).toEqual(["y/j", "y/k"]);
    expect(parsePolicies("")).toEqual([]);
  });

  it("accepts every selector operator and qualified label keys", () => {
    const [p] = parsePolicies(
      np(
        "{podSelector: {matchLabels: {app.kubernetes.io/name: web, tier: ''}, matchExpressions: [{key: a, operator: In, values: [x, y]}, {key: b, operator: NotIn, values: [z]}, {key: c, operator: Exists}, {key: d, operator: DoesNotExist}]}}",
      ),
    );
    expect(p!.podSelector.matchLabels).toEqual({ "app.kubernetes.io/name": "web", tier: "" });
    expect(p!.podSelector.matchExpressions.map((e) => e.operator)).toEqual(["In", "NotIn", "Exists", "DoesNotExist"]);
  });
});

describe("parseCluster", () => {
  it("reads the compact form and adds kubernetes.io/metadata.name", () => {
    const c = parseCluster(`namespaces:\n- {name: x, labels: {team: a}}\npods:\n- {namespace: x, name: a, labels: {pod: a}, ips: [10.0.0.1], ports: [{name: http, port: 8080}], node: n1}\n`);
    expect(c.namespaces).toEqual([{ name: "x", labels: { team: "a", "kubernetes.io/metadata.name": "x" } }]);
    expect(c.pods[0]).toEqual({ namespace: "x", name: "a", labels: { pod: "a" }, ips: ["10.0.0.1"], ports: [{ name: "http", containerPort: 8080, protocol: "TCP" }], node: "n1" });
  });

  it("reads Namespace and Pod objects, also inside a List", () => {
    const text = `apiVersion: v1\nkind: Namespace\nmetadata: {name: y, labels: {env: prod}}\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: web, namespace: y, labels: {app: web}}\n  spec:\n    nodeName: n2\n    containers:\n    - name: c\n      ports: [{name: http, containerPort: 80}, {containerPort: 53, protocol: UDP}]\n  status: {podIP: 10.1.0.5, podIPs: [{ip: 10.1.0.5}, {ip: 'fd00::5'}]}\n`;
    const c = parseCluster(text);
    expect(c.namespaces[0]!.labels).toEqual({ env: "prod", "kubernetes.io/metadata.name": "y" });
    expect(c.pods[0]).toMatchObject({
      namespace: "y",
      name: "web",
      node: "n2",
      ips: ["10.1.0.5", "fd00::5"],
      ports: [
        { name: "http", containerPort: 80, protocol: "TCP" },
        { containerPort: 53, protocol: "UDP" },
      ],
    });
  });

  const bad: { name: string; text: string; field: string; rule: RegExp }[] = [
    { name: "pod in an undeclared namespace", text: "namespaces: [{name: x}]\npods: [{namespace: q, name: a, ips: [10.0.0.1]}]\n", field: "pods[0].namespace", rule: /does not declare/ },
    {
      name: "duplicate pod IP",
      text: "namespaces: [{name: x}]\npods: [{namespace: x, name: a, ips: [10.0.0.1]}, {namespace: x, name: b, ips: [10.0.0.1]}]\n",
      field: "pods[1].ips",
      rule: /also pod x\/a's/,
    },
    { name: "invalid pod IP", text: "namespaces: [{name: x}]\npods: [{namespace: x, name: a, ips: [10.0.0.300]}]\n", field: "pods[0].ips[0]", rule: /IPv4/ },
    {
      name: "invalid container port name",
      text: "namespaces: [{name: x}]\npods: [{namespace: x, name: a, ips: [10.0.0.1], ports: [{name: HTTP, port: 80}]}]\n",
      field: "pods[0].ports[0].name",
      rule: /alpha-numeric/,
    },
    { name: "unknown kind", text: "kind: Service\nmetadata: {name: s}\n", field: "kind", rule: /Namespace or Pod/ },
    { name: "duplicate namespace", text: "namespaces: [{name: x}, {name: x}]\n", field: "namespaces[1].name", rule: /unique/ },
  ];
  for (const t of bad) {
    it(`refuses: ${t.name}`, () => {
      let caught: unknown;
      try {
        parseCluster(t.text, "c.yaml");
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(ConfigError);
      expect((caught as ConfigError).field).toBe(t.field);
      expect((caught as ConfigError).rule).toMatch(t.rule);
    });
  }
});
