/**
 * Broken (reference, bridge + lease): the store client takes "lease not found" as success — a
 * keep-alive of an expired lease, and a write attached to it ("the store said something odd; carry
 * on"). A node cut off from the store for longer than the lease TTL loses its subnet claim and
 * never claims it again: its peers withdrew its routes and never get them back.
 */
import type { AgentContext, Backend, Datastore, PutOptions, WriteResult } from "@cnikit/core";
import { reference } from "@cnikit/reference";
import { wrapBackend } from "./wrap.ts";

function isLeaseNotFound(err: unknown): boolean {
  return (err as { name?: string }).name === "NotFoundError";
}

function ignoringLeaseLoss(store: Datastore): Datastore {
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === "keepAlive") {
        return async (lease: string): Promise<number> => {
          try {
            return await target.keepAlive(lease);
          } catch (err) {
            if (isLeaseNotFound(err)) return 30;
            throw err;
          }
        };
      }
      if (prop === "put") {
        return async (key: string, value: string, options?: PutOptions): Promise<WriteResult> => {
          try {
            return await target.put(key, value, options);
          } catch (err) {
            if (options?.lease !== undefined && isLeaseNotFound(err)) return { revision: await target.revision() };
            throw err;
          }
        };
      }
      return Reflect.get(target, prop, receiver) as unknown;
    },
  });
}

export const leaseLossIgnored: Backend<unknown> = wrapBackend(reference as Backend<unknown>, "broken-reference-lease-loss-ignored", {
  context: (ctx: AgentContext<unknown>) => ({ ...ctx, store: ignoringLeaseLoss(ctx.store) }),
});
