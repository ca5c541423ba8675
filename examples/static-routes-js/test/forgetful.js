// @ts-check
// static-routes with one bug, to see what a red result looks like: its plan forgets the routes to the other nodes.
import { defineBackend } from "@cnikit/core";
import { StaticRoutesAgent } from "../src/agent.js";
import { staticRoutes } from "../src/index.js";

class ForgetfulAgent extends StaticRoutesAgent {
  /** @override */
  plan() {
    return { ...super.plan(), routes: [] };
  }
}

export const forgetful = defineBackend({ ...staticRoutes, name: "forgetful", createAgent: (ctx) => new ForgetfulAgent(ctx) });
