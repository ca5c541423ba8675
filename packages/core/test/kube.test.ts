import { describe, expect, it } from "vitest";
import { ConfigError, KUBE_PREFIX, kubeNamespaceKey, kubeNamespaceValue, kubeNetworkPolicyKey, parseKubeNamespace } from "../src/index.ts";

describe("kube key layout", () => {
  it("builds namespace and NetworkPolicy keys under the two prefixes", () => {
    expect(kubeNamespaceKey("x")).toBe("/cnikit/kube/namespaces/x");
    expect(kubeNetworkPolicyKey("x", "deny-all")).toBe("/cnikit/kube/networkpolicies/x/deny-all");
    expect(kubeNamespaceKey("x").startsWith(KUBE_PREFIX.namespaces)).toBe(true);
    expect(kubeNetworkPolicyKey("y", "p").startsWith(KUBE_PREFIX.networkPolicies)).toBe(true);
  });

  it.each([
    ["empty namespace name", () => kubeNamespaceKey(""), "metadata.name"],
    ["namespace name with a slash", () => kubeNamespaceKey("a/b"), "metadata.name"],
    ["policy in an empty namespace", () => kubeNetworkPolicyKey("", "p"), "metadata.namespace"],
    ["policy name with a slash", () => kubeNetworkPolicyKey("x", "p/q"), "metadata.name"],
  ])("refuses %s with a ConfigError naming the field", (_label, fn, field) => {
    expect(fn).toThrow(ConfigError);
    try {
      fn();
    } catch (err) {
      expect((err as ConfigError).field).toBe(field);
    }
  });

  it("round-trips a namespace through its key and value", () => {
    const ns = { name: "y", labels: { ns: "y", "kubernetes.io/metadata.name": "y" } };
    expect(JSON.parse(kubeNamespaceValue(ns))).toEqual({ metadata: ns });
    expect(parseKubeNamespace(kubeNamespaceKey("y"), kubeNamespaceValue(ns))).toEqual(ns);
    expect(parseKubeNamespace(kubeNamespaceKey("z"), "{}")).toEqual({ name: "z", labels: {} });
  });

  it.each([
    ["a key outside the prefix", "/calico/namespaces/x", "{}", "key"],
    ["a value that is not JSON", "/cnikit/kube/namespaces/x", "{", "namespace x"],
    ["a name that disagrees with the key", "/cnikit/kube/namespaces/x", '{"metadata":{"name":"y"}}', "metadata.name"],
    ["a label value that is not a string", "/cnikit/kube/namespaces/x", '{"metadata":{"labels":{"a":1}}}', "metadata.labels.a"],
  ])("parseKubeNamespace refuses %s", (_label, key, value, field) => {
    try {
      parseKubeNamespace(key, value);
      expect.unreachable("must throw");
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).field).toBe(field);
    }
  });
});
