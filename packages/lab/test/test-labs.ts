/**
 * Labs a test file builds: unique names (`<prefix><pid><suffix>`, at most 20 characters), every
 * one remembered so that `downAll` (in afterAll) removes any a crash left, and `leftovers` (what
 * of a lab is still on the machine: namespaces, state directory) to assert a run cleaned up.
 *
 *   const labs = testLabs("g");
 *   afterAll(() => labs.downAll(), 120_000);
 *   const name = labs.labName("x");  ...  expect(await labs.leftovers(name)).toEqual([]);
 */
import { existsSync } from "node:fs";
import { listNetns } from "@cnikit/linux";
import { downLabWithExtras, labDir, nsPrefix } from "../src/index.ts";

/** The lab names of one test file (see the module comment). */
export interface TestLabs {
  /** A fresh lab name ending in `suffix`, remembered for `downAll`. */
  labName(suffix: string): string;
  /** Takes down every lab named so far (also those left by a crash). Never throws for a lab already gone. */
  downAll(): Promise<void>;
  /** Namespaces and the state directory of lab `name` still on the machine. */
  leftovers(name: string): Promise<string[]>;
}

export function testLabs(prefix: string): TestLabs {
  const run = `${prefix}${process.pid}`;
  const made = new Set<string>();
  return {
    labName(suffix) {
      const name = `${run}${suffix}`.slice(0, 20);
      made.add(name);
      return name;
    },
    async downAll() {
      for (const name of made) await downLabWithExtras(name);
    },
    async leftovers(name) {
      const out = (await listNetns()).filter((ns) => ns.startsWith(`${nsPrefix(name)}-`));
      if (existsSync(labDir(name))) out.push(labDir(name));
      return out;
    },
  };
}
