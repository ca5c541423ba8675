/** Entry point of `pnpm lab ...` (see cli-main.ts for the commands). */
import { labMain } from "./cli-main.ts";

process.exitCode = await labMain(process.argv.slice(2));
