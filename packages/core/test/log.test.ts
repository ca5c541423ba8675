import { afterEach, describe, expect, it, vi } from "vitest";
import { ConfigError, VirtualClock, createLogger, formatRecord, memoryLogger, type LogLevel } from "../src/index.ts";

function capture(level?: LogLevel): { lines: string[]; parsed: () => Record<string, unknown>[]; log: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  const log = createLogger({ name: "flannel/node-1", ...(level === undefined ? {} : { level }), sink: (l) => lines.push(l) });
  return { lines, parsed: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>), log };
}

describe("createLogger", () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("writes one JSON line per record with time, level, name, msg and fields", () => {
    const { lines, parsed, log } = capture();
    log.info("lease acquired", { subnet: "10.244.1.0/24", ttl: 86400 });
    log.warn("no fields");
    expect(lines).toHaveLength(2);
    for (const line of lines) expect(line).not.toContain("\n");
    const [first, second] = parsed();
    expect(first).toEqual({
      time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      level: "info",
      name: "flannel/node-1",
      msg: "lease acquired",
      fields: { subnet: "10.244.1.0/24", ttl: 86400 },
    });
    expect(second).toEqual({ time: expect.any(String), level: "warn", name: "flannel/node-1", msg: "no fields" });
  });

  it.each<[LogLevel | undefined, string[]]>([
    [undefined, ["info", "warn", "error"]],
    ["debug", ["debug", "info", "warn", "error"]],
    ["info", ["info", "warn", "error"]],
    ["warn", ["warn", "error"]],
    ["error", ["error"]],
  ])("level %s lets through %o", (level, expected) => {
    const { parsed, log } = capture(level);
    log.debug("d");
    log.info("i");
    log.warn("w");
    log.error("e");
    expect(parsed().map((r) => r["level"])).toEqual(expected);
  });

  it("takes time from the given clock", async () => {
    const clock = new VirtualClock(1000);
    const lines: string[] = [];
    const log = createLogger({ name: "x", clock, sink: (l) => lines.push(l) });
    log.info("a");
    await clock.advance(500);
    log.info("b");
    expect(lines.map((l) => (JSON.parse(l) as { time: string }).time)).toEqual(["1970-01-01T00:00:01.000Z", "1970-01-01T00:00:01.500Z"]);
  });

  it("makes fields JSON-safe and never throws while logging", () => {
    const { parsed, log } = capture();
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic["self"] = cyclic;
    const shared = { v: 1 };
    const err = Object.assign(new Error("boom"), { code: 11 });
    log.error("odd values", {
      big: 10n ** 20n,
      err,
      cyclic,
      twice: [shared, shared],
      map: new Map([["k", 1]]),
      set: new Set([1, 2]),
      bytes: new Uint8Array(4),
      nan: Number.NaN,
      gone: undefined,
      fn: () => 1,
    });
    log.error("bad toJSON", {
      x: {
        toJSON() {
          throw new Error("nope");
        },
      },
    });
    const [odd, bad] = parsed();
    expect(odd?.["fields"]).toEqual({
      big: "100000000000000000000",
      err: { name: "Error", message: "boom", code: 11 },
      cyclic: { a: 1, self: "[Circular]" },
      twice: [{ v: 1 }, { v: 1 }],
      map: { k: 1 },
      set: [1, 2],
      bytes: "<4 bytes>",
      nan: "NaN",
    });
    expect(bad?.["fields"]).toBe("[unserialisable: nope]");
  });

  it("writes to stderr with a trailing newline by default", () => {
    const writes: string[] = [];
    vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
      writes.push(String(chunk));
      return true;
    });
    createLogger({ name: "agent" }).warn("hello", { n: 1 });
    expect(writes).toHaveLength(1);
    expect(writes[0]?.endsWith("\n")).toBe(true);
    expect(JSON.parse(writes[0]!)).toMatchObject({ level: "warn", name: "agent", msg: "hello", fields: { n: 1 } });
  });

  it.each<[Record<string, unknown>, string]>([
    [{ name: "" }, "name"],
    [{ name: 5 }, "name"],
    [{ name: "x", level: "trace" }, "level"],
    [{ name: "x", level: "toString" }, "level"],
  ])("refuses %o naming %s", (options, field) => {
    let caught: unknown;
    try {
      createLogger(options as unknown as Parameters<typeof createLogger>[0]);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).field).toBe(field);
  });
});

describe("memoryLogger", () => {
  it("keeps every record by default, fields as given and absent when empty", () => {
    const clock = new VirtualClock(42);
    const { logger, records } = memoryLogger({ name: "t", clock });
    const fields = { node: "n1" };
    logger.debug("d");
    logger.info("i", fields);
    logger.error("e", {});
    expect(records).toEqual([
      { time: 42, level: "debug", name: "t", msg: "d" },
      { time: 42, level: "info", name: "t", msg: "i", fields: { node: "n1" } },
      { time: 42, level: "error", name: "t", msg: "e" },
    ]);
    expect(records[1]?.fields).toBe(fields);
  });

  it("filters by level", () => {
    const { logger, records } = memoryLogger({ level: "warn" });
    logger.info("i");
    logger.warn("w");
    expect(records.map((r) => [r.name, r.level, r.msg])).toEqual([["test", "warn", "w"]]);
  });
});

describe("formatRecord", () => {
  it.each<[number, unknown]>([
    [0, "1970-01-01T00:00:00.000Z"],
    [1e20, 1e20],
    [Number.NaN, null],
  ])("writes time %d as %o", (time, expected) => {
    const line = formatRecord({ time, level: "info", name: "n", msg: "m" });
    expect(JSON.parse(line)).toEqual({ time: expected, level: "info", name: "n", msg: "m" });
  });
});
