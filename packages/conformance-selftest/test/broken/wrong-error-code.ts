/** Broken: an invalid config is refused with a plain Error (no CNI code 7, no field path). */
import type { Backend } from "@cnikit/core";
import { reference } from "@cnikit/reference";
import { wrapBackend } from "./wrap.ts";

/** `base` whose parser re-throws every refusal as a plain Error (the ConfigError's code and field are lost). */
export function wrongErrorCodeOf<C>(base: Backend<C>, name: string): Backend<C> {
  return wrapBackend(base, name, {
    parseConfig: (input) => {
      try {
        return base.parseConfig(input);
      } catch (err) {
        // eslint-disable-next-line preserve-caught-error -- the broken backend drops the ConfigError on purpose
        throw new Error(`bad config: ${err instanceof Error ? err.message : String(err)}`);
      }
    },
  });
}

export const wrongErrorCode = wrongErrorCodeOf(reference, "broken-wrong-error-code");
