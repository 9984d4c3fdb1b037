/**
 * Column-aligned text for the CLI. Cells can hold values that came off the network (a SIP
 * User-Agent, a peer's error text), so control characters are made visible instead of being sent
 * to the terminal, where an escape sequence could rewrite the screen.
 */

import stringWidth from "string-width";

export type Cell = string | number | boolean | null | undefined;
export type Align = "left" | "right";

// C0 controls, DEL and C1 controls (which some terminals also act on), and the bidirectional
// embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069): an alias target holding
// U+202E showed reversed, and the rest of its line with it.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

/** A value as one safe line of terminal text; null/undefined show as "-". */
export function cellText(value: Cell): string {
  if (value === null || value === undefined || value === "") return "-";
  if (typeof value === "boolean") return value ? "yes" : "no";
  return String(value).replace(CONTROL, (c) => {
    const code = c.charCodeAt(0);
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`;
  });
}

// Printable ASCII, nearly every cell: one column a character, measured without the grapheme walk.
const NARROW = /^[\x20-\x7e]*$/;

/**
 * The terminal columns a cell's text takes: East Asian wide and fullwidth characters and emoji two,
 * combining marks and zero-width characters none (string-width, by grapheme), other characters one.
 */
export function displayWidth(text: string): number {
  return NARROW.test(text) ? text.length : stringWidth(text);
}

/** Renders rows under a header, columns separated by two spaces, trailing spaces trimmed. */
export function formatTable(header: readonly string[], rows: readonly (readonly Cell[])[], opts: { align?: readonly Align[] } = {}): string {
  const lines = [header.map((h) => cellText(h)), ...rows.map((r) => header.map((_, i) => cellText(r[i])))];
  // A loop, not Math.max(...column): spreading a column passes one argument per row, which
  // overflowed the call stack above ~130,000 rows (`location ls --all` of a big table).
  const widths = header.map(() => 0);
  for (const cells of lines) {
    for (let i = 0; i < widths.length; i++) widths[i] = Math.max(widths[i] ?? 0, displayWidth(cells[i] ?? ""));
  }
  return lines
    .map((cells) =>
      cells
        .map((c, i) => {
          const gap = " ".repeat(Math.max(0, (widths[i] ?? 0) - displayWidth(c)));
          return opts.align?.[i] === "right" ? gap + c : c + gap;
        })
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/** "key   value" pairs with the values lined up, for single-record views. */
export function formatPairs(pairs: readonly (readonly [string, Cell])[]): string {
  const width = Math.max(0, ...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${k.padEnd(width)}  ${cellText(v)}`.trimEnd()).join("\n");
}
