/**
 * Calico's label selector language, the part pools, BGP peers and nodes use: `all()`, `has(k)`,
 * `k == 'v'`, `k != 'v'`, `k in {'a', 'b'}`, `k not in {...}`, `!expr`, `&&`, `||` and parentheses.
 * Parsed once into a predicate; parse errors are `ConfigError`s naming the field.
 */
import { ConfigError } from "@cnikit/core";

/** A compiled selector: true when the labels match. */
export type Selector = (labels: Readonly<Record<string, string>>) => boolean;

type Tok = { t: "id" | "str" | "op"; v: string };

function tokenize(text: string): Tok[] | string {
  const out: Tok[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const two = text.slice(i, i + 2);
    if (["==", "!=", "&&", "||"].includes(two)) {
      out.push({ t: "op", v: two });
      i += 2;
      continue;
    }
    if ("(){},!".includes(c)) {
      out.push({ t: "op", v: c });
      i++;
      continue;
    }
    if (c === "'" || c === '"') {
      const end = text.indexOf(c, i + 1);
      if (end < 0) return `unterminated string at ${i}`;
      out.push({ t: "str", v: text.slice(i + 1, end) });
      i = end + 1;
      continue;
    }
    const m = /^[A-Za-z0-9_./-]+/.exec(text.slice(i));
    if (!m) return `unexpected character ${JSON.stringify(c)} at ${i}`;
    out.push({ t: "id", v: m[0] });
    i += m[0].length;
  }
  return out;
}

/**
 * Parses a selector. The empty string means `all()` (as Calico's nodeSelector default).
 * @throws ConfigError naming `field` for a syntax error, `global()` or more than 1024 characters.
 */
export function parseSelector(text: unknown, field: string, component = "calico"): Selector {
  if (typeof text !== "string") throw new ConfigError({ component, field, rule: "must be a selector string such as all() or role == 'x'", value: text });
  if (text.length > 1024) throw new ConfigError({ component, field, rule: "must be at most 1024 characters" });
  if (text.trim() === "") return () => true;
  const toks = tokenize(text);
  const fail = (why: string): never => {
    throw new ConfigError({ component, field, rule: `is not a valid selector: ${why}`, value: text });
  };
  if (typeof toks === "string") return fail(toks);
  let p = 0;
  const peek = (): Tok | undefined => toks[p];
  const eat = (v: string): boolean => {
    if (toks[p]?.t === "op" && toks[p]!.v === v) {
      p++;
      return true;
    }
    return false;
  };
  const expect = (v: string): void => {
    if (!eat(v)) fail(`expected ${v} at token ${p + 1}`);
  };
  const strList = (): string[] => {
    expect("{");
    const vals: string[] = [];
    if (eat("}")) return vals;
    for (;;) {
      const s = toks[p++];
      if (s?.t !== "str") fail("expected a quoted value in the set");
      vals.push(s!.v);
      if (eat("}")) return vals;
      expect(",");
    }
  };
  const primary = (): Selector => {
    if (eat("!")) {
      const inner = primary();
      return (l) => !inner(l);
    }
    if (eat("(")) {
      const inner = orExpr();
      expect(")");
      return inner;
    }
    const tok = toks[p++];
    if (tok?.t !== "id") return fail(`expected a label key or function at token ${p}`);
    const name = tok.v;
    if ((name === "all" || name === "has" || name === "global") && peek()?.v === "(") {
      expect("(");
      if (name === "all") {
        expect(")");
        return () => true;
      }
      if (name === "global") return fail("global() is not allowed here");
      const key = toks[p++];
      if (key?.t !== "id") fail("has() takes a label key");
      expect(")");
      return (l) => Object.prototype.hasOwnProperty.call(l, key!.v);
    }
    if (eat("==")) {
      const v = toks[p++];
      if (v?.t !== "str") fail("== takes a quoted value");
      return (l) => l[name] === v!.v;
    }
    if (eat("!=")) {
      const v = toks[p++];
      if (v?.t !== "str") fail("!= takes a quoted value");
      return (l) => l[name] !== v!.v;
    }
    if (peek()?.t === "id" && peek()!.v === "in") {
      p++;
      const set = new Set(strList());
      return (l) => l[name] !== undefined && set.has(l[name]!);
    }
    if (peek()?.t === "id" && peek()!.v === "not" && toks[p + 1]?.v === "in") {
      p += 2;
      const set = new Set(strList());
      return (l) => l[name] === undefined || !set.has(l[name]!);
    }
    return fail(`expected ==, !=, in or not in after ${name}`);
  };
  const andExpr = (): Selector => {
    let left = primary();
    while (eat("&&")) {
      const a = left;
      const b = primary();
      left = (l) => a(l) && b(l);
    }
    return left;
  };
  const orExpr = (): Selector => {
    let left = andExpr();
    while (eat("||")) {
      const a = left;
      const b = andExpr();
      left = (l) => a(l) || b(l);
    }
    return left;
  };
  const sel = orExpr();
  if (p !== toks.length) fail(`unexpected ${JSON.stringify(toks[p]!.v)} at token ${p + 1}`);
  return sel;
}
