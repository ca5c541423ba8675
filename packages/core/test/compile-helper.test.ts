import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { compileHelper } from "../src/index.ts";

const dir = mkdtempSync(join(tmpdir(), "cnikit-compile-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("compileHelper (the C helpers packages ship: cni's shim, linux's netlink helper, weave's TAP helper)", () => {
  it("compiles a C file into a new directory and returns the executable's path", () => {
    const source = join(dir, "ok.c");
    writeFileSync(source, '#include <stdio.h>\nint main(void) { puts("built"); return 0; }\n');
    const out = compileHelper({ label: "test", source, out: join(dir, "nested", "ok") });
    expect(out).toBe(join(dir, "nested", "ok"));
    expect(execFileSync(out, { encoding: "utf8" })).toBe("built\n");
  });

  it("refuses a warning (-Werror) with CniError 999 naming the helper, the source, the compiler and the Debian packages", () => {
    const source = join(dir, "warn.c");
    writeFileSync(source, "int main(void) { int unused; return 0; }\n");
    let err: unknown;
    try {
      compileHelper({ label: "test-helper", source, out: join(dir, "warn") });
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 999 });
    const message = (err as Error).message;
    expect(message).toContain("[test-helper] cannot compile");
    expect(message).toContain(source);
    expect(message).toContain("gcc and libc6-dev");
    expect(message).toContain("unused");
  });

  it("names a compiler that does not exist", () => {
    const source = join(dir, "ok.c");
    expect(() => compileHelper({ label: "test", source, out: join(dir, "x"), cc: "/nonexistent/cc" })).toThrow(/with \/nonexistent\/cc/);
  });
});
