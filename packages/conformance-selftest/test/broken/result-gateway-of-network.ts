/**
 * Broken (flannel): the ADD result names the first address of the whole Network as the gateway
 * (and routes through it) instead of the node subnet's bridge address that the dataplane gives the
 * pod. The result still looks like a well-formed CNI result.
 */
import { Prefix } from "@cnikit/core";
import type { AgentContext, AttachResult, Backend, NodeAgent, PodAttachment } from "@cnikit/core";
import { flannel } from "@cnikit/flannel";
import type { FlannelConfig } from "@cnikit/flannel";
import { WrappedAgent, wrapBackend } from "./wrap.ts";

class NetworkGatewayAgent extends WrappedAgent {
  constructor(
    inner: NodeAgent,
    private readonly ctx: AgentContext<FlannelConfig>,
  ) {
    super(inner);
  }

  override async attach(pod: PodAttachment): Promise<AttachResult> {
    const result = await this.inner.attach(pod);
    const network = this.ctx.config.ipv4?.network;
    if (!network) return result;
    const gw = Prefix.parse(network).nth(1);
    return {
      ...result,
      ips: result.ips.map((ip) => (ip.address.includes(":") ? ip : { ...ip, gateway: gw })),
      routes: result.routes.map((r) => (r.dst.includes(":") ? r : { ...r, gw })),
    };
  }
}

export const resultGatewayOfNetwork: Backend<FlannelConfig> = wrapBackend(flannel, "broken-flannel-result-gateway-of-network", {
  agent: (inner, ctx) => new NetworkGatewayAgent(inner, ctx),
});
