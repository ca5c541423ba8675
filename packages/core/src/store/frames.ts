/**
 * The framing of the file datastore's log and snapshot: one record per line,
 * `<crc32 of the JSON, 8 hex digits> <JSON>\n`. JSON never holds a raw newline, so a line is a
 * record; the checksum tells a whole record from a torn or damaged one.
 */

import { crc32 } from "node:zlib";

/** Frames one JSON text as a line. */
export function frame(json: string): string {
  return `${crc32(json).toString(16).padStart(8, "0")} ${json}\n`;
}

export interface ParsedFrames {
  /** The parsed JSON of every good line before the first bad one. */
  records: unknown[];
  /** Bytes up to the end of the last good line. */
  goodBytes: number;
  /** Where the first bad line (or an unterminated tail) starts, when there is one. */
  badAt?: number;
  /** Whether a good line follows the first bad one (damage inside the file, not a torn tail). */
  goodAfterBad: boolean;
}

function parseLine(buf: Buffer, start: number, end: number): { ok: true; value: unknown } | { ok: false } {
  if (end - start < 10 || buf[start + 8] !== 0x20) return { ok: false };
  const want = Number.parseInt(buf.toString("latin1", start, start + 8), 16);
  if (!/^[0-9a-f]{8}$/.test(buf.toString("latin1", start, start + 8))) return { ok: false };
  const body = buf.subarray(start + 9, end);
  if (crc32(body) !== want) return { ok: false };
  try {
    return { ok: true, value: JSON.parse(body.toString("utf8")) };
  } catch {
    return { ok: false };
  }
}

/** Parses framed lines, stopping at the first bad or unterminated one. */
export function parseFrames(buf: Buffer): ParsedFrames {
  const records: unknown[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const nl = buf.indexOf(0x0a, pos);
    if (nl === -1) return { records, goodBytes: pos, badAt: pos, goodAfterBad: false };
    const line = parseLine(buf, pos, nl);
    if (!line.ok) {
      let goodAfterBad = false;
      for (let p = nl + 1; p < buf.length;) {
        const n = buf.indexOf(0x0a, p);
        if (n === -1) break;
        if (parseLine(buf, p, n).ok) {
          goodAfterBad = true;
          break;
        }
        p = n + 1;
      }
      return { records, goodBytes: pos, badAt: pos, goodAfterBad };
    }
    records.push(line.value);
    pos = nl + 1;
  }
  return { records, goodBytes: pos, goodAfterBad: false };
}
