// docs/writing-a-backend.md cannot rot: every code block in it (TypeScript, JavaScript, JSON) is
// preceded by a comment naming the example file it is taken from, and appears there verbatim.
// Shell blocks (commands to type) and text blocks (output) need no source.
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = resolve(fileURLToPath(import.meta.url), "../../../..");
const guide = readFileSync(join(root, "docs/writing-a-backend.md"), "utf8");

interface Block {
  line: number;
  lang: string;
  code: string;
  source: string | undefined;
}

/** The fenced blocks of a markdown text, each with the `<!-- from: path -->` comment right above it (if any). */
function blocksOf(markdown: string): Block[] {
  const lines = markdown.split("\n");
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const end = lines.findIndex((l, j) => j > i && l.startsWith("```"));
    if (end < 0) throw new Error(`docs/writing-a-backend.md:${i + 1}: a code block is never closed`);
    const above = /^<!-- from: (\S+) -->$/.exec(lines[i - 1] ?? "");
    blocks.push({ line: i + 1, lang: open[1]!, code: lines.slice(i + 1, end).join("\n"), source: above?.[1] });
    i = end;
  }
  return blocks;
}

const CODE = new Set(["ts", "js", "json"]);
const blocks = blocksOf(guide);

describe("docs/writing-a-backend.md", () => {
  it("quotes both examples, in TypeScript and in JavaScript", () => {
    const sources = new Set(blocks.flatMap((b) => (b.source ? [b.source] : [])));
    for (const file of ["src/index", "src/config", "src/plan", "src/agent", "test/conformance.test"]) {
      expect(sources, file).toContain(`examples/static-routes-ts/${file}.ts`);
      expect(sources, file).toContain(`examples/static-routes-js/${file}.js`);
    }
  });

  it("names the source of every code block", () => {
    const unsourced = blocks.filter((b) => CODE.has(b.lang) && b.source === undefined).map((b) => `line ${b.line} (${b.lang})`);
    expect(unsourced).toEqual([]);
    const unknown = blocks.filter((b) => !CODE.has(b.lang) && !["sh", "text"].includes(b.lang)).map((b) => `line ${b.line}: \`\`\`${b.lang}`);
    expect(unknown).toEqual([]);
  });

  for (const block of blocks.filter((b) => b.source !== undefined)) {
    it(`line ${block.line}: the block is in ${block.source} verbatim`, () => {
      const file = join(root, block.source!);
      expect(existsSync(file), `${block.source} does not exist`).toBe(true);
      expect(block.code.trim()).not.toBe("");
      const text = readFileSync(file, "utf8");
      if (!text.includes(block.code)) {
        const missing = block.code.split("\n").find((l) => !text.includes(l));
        throw new Error(
          `docs/writing-a-backend.md:${block.line}: the block is not in ${block.source} as written${missing ? `; first line not found: ${missing.trim()}` : " (its lines are, but not in this order)"}`,
        );
      }
    });
  }
});
