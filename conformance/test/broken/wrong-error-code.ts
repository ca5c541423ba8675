/** Broken: an invalid config is refused with a plain Error (no CNI code 7, no field path). */
import { reference } from "@cnikit/reference";
import { wrapBackend } from "./wrap.ts";

export const wrongErrorCode = wrapBackend(reference, "broken-wrong-error-code", {
  parseConfig: (input) => {
    try {
      return reference.parseConfig(input);
    } catch (err) {
      throw new Error(`bad config: ${err instanceof Error ? err.message : String(err)}`);
    }
  },
});
