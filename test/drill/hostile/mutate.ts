/**
 * The fuzzer's seeded generator: mutations of valid messages, so a run is repeatable from its seed.
 *
 * A mutant is a valid message (a JSON value) changed by one to three operations, either on the
 * value tree (a field's type swapped, removed, added, replaced by a huge string or array, by
 * numbers at the edges, by unicode, NUL, SQL or quoting characters, or by deeply nested arrays) or
 * on its text (truncated, characters flipped, inserted, deleted or duplicated). Whether a mutant
 * is still valid is not decided here: the callers check each one against the contract.
 */

export interface Rng {
  /** [0, 1) */
  next(): number;
  int(n: number): number;
  pick<T>(xs: readonly T[]): T;
  chance(p: number): boolean;
}

/** mulberry32: small, fast and good enough to pick mutations. */
export function seededRng(seed: number): Rng {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n) => Math.floor(next() * n),
    pick: (xs) => xs[Math.floor(next() * xs.length)] as (typeof xs)[number],
    chance: (p) => next() < p,
  };
}

/** Strings that have broken SQL, JSON, C and SIP parsers elsewhere. */
export const NASTY_STRINGS: readonly string[] = [
  "", "'", '"', "\\", "\\\\", "';--", "' OR 1=1 --", '" OR ""="', "'); DROP TABLE location; --", "%00", "%", "%s%s%n",
  "\u0000", "a\u0000b", "\u0000\u0000\u0000", "\r\n", "\n", "\t", "\u0007", "\u001b[31m", "😀", "👨‍👩‍👧‍👦", "\u200f", "\u202e", "\u200b",
  "\ufeff", "\ud800", "\udc00", "\uffff", "\u{10ffff}", "é", "Ω", "中文", "<script>", "${x}", "{{x}}", "__proto__", "constructor",
  "sip:", "sip:@", "sip:a@b;lr", "<sip:a@b>", "sip:a@b\u0000c", "a@b", "@", "udp:", "udp:[::1]:99999", "NaN", "-0", "1e999",
];

const NUMBERS: readonly unknown[] = [0, -0, -1, 1, 1.5, -1.5, 2 ** 31, 2 ** 32, 2 ** 32 - 1, 2 ** 53, 2 ** 53 + 2, -(2 ** 53), 1e308, -1e308, 5e-324, 4294967295, 4294967296];

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Marks the spot a text-level operation fills in (deep nesting cannot be built as a value: JSON.stringify would overflow the stack). */
const HOLE = "\u0001fuzz-hole\u0001";
const HOLE_JSON = JSON.stringify(HOLE);

function clone<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

/** Every place in a value: a parent and a key, for each nested field or element. */
function places(root: Json): { parent: Json[] | { [k: string]: Json }; key: string | number }[] {
  const out: { parent: Json[] | { [k: string]: Json }; key: string | number }[] = [];
  const walk = (v: Json, depth: number) => {
    if (depth > 8 || v === null || typeof v !== "object") return;
    if (Array.isArray(v)) {
      v.forEach((x, i) => {
        out.push({ parent: v, key: i });
        walk(x, depth + 1);
      });
    } else {
      for (const k of Object.keys(v)) {
        out.push({ parent: v, key: k });
        walk(v[k] as Json, depth + 1);
      }
    }
  };
  walk(root, 0);
  return out;
}

function randomString(rng: Rng, len: number): string {
  const alphabets = ["abcdefghijklmnopqrstuvwxyz0123456789", "\"'\\;:@<>%&=?,/ ", "😀éΩ中\u200f\u202e\u0000\u0001\ud800"];
  const chars = rng.pick(alphabets);
  let s = "";
  for (let i = 0; i < len; i++) s += chars[rng.int(chars.length)] ?? "";
  return s;
}

function hugeString(rng: Rng): string {
  const n = rng.pick([256, 1024, 4096, 16_384]);
  return rng.chance(0.5) ? rng.pick(["x", "\u0000", "😀", "\\", '"']).repeat(n) : randomString(rng, Math.min(n, 5000));
}

/** A value of another JSON type than `v`. */
function otherType(rng: Rng, v: Json): Json {
  const options: Json[] = [null, true, false, 0, -1, "", "0", "null", [], {}, [v], { v }, String(v).slice(0, 50)];
  if (typeof v === "number") options.push(String(v), [v]);
  if (typeof v === "string") options.push(Number(v) || 0, v.length);
  const pick = rng.pick(options);
  return typeof pick === typeof v && pick === v ? null : pick;
}

type TreeOp = (rng: Rng, root: Json) => Json;

/** `big` operations make the value large: they come last, so no later operation walks or copies it. */
const treeOps: { weight: number; big?: boolean; op: TreeOp }[] = [
  { weight: 6, op: (rng, root) => atPlace(rng, root, (v) => otherType(rng, v)) },
  {
    weight: 4,
    op: (rng, root) => {
      const ps = places(root);
      const p = ps.length > 0 ? rng.pick(ps) : null;
      if (!p) return root;
      if (Array.isArray(p.parent)) p.parent.splice(p.key as number, 1);
      else delete p.parent[p.key as string];
      return root;
    },
  },
  {
    weight: 3,
    op: (rng, root) => {
      const objects = [root, ...places(root).map((p) => (p.parent as Record<string, Json>)[p.key as string] as Json)].filter(
        (v): v is { [k: string]: Json } => v !== null && typeof v === "object" && !Array.isArray(v),
      );
      if (objects.length === 0) return root;
      // defineProperty: a plain assignment to "__proto__" would set the prototype, not add a key.
      Object.defineProperty(rng.pick(objects), rng.pick(["x", "__proto__", "constructor", "sql", "", "result", "error", "id", "params", "😀"]), {
        value: rng.pick<Json>([1, "'; DROP TABLE x; --", null, {}, []]), enumerable: true, writable: true, configurable: true,
      });
      return root;
    },
  },
  { weight: 5, op: (rng, root) => atPlace(rng, root, () => rng.pick(NASTY_STRINGS)) },
  { weight: 1, big: true, op: (rng, root) => atPlace(rng, root, () => hugeString(rng)) },
  { weight: 4, op: (rng, root) => atPlace(rng, root, () => rng.pick(NUMBERS) as Json) },
  {
    weight: 1,
    big: true,
    op: (rng, root) =>
      atPlace(rng, root, (v) => {
        const n = rng.pick([100, 1000, 5001]);
        // Copies of a small value only, so the frame stays within a few hundred kB.
        const small: Json = JSON.stringify(v).length <= 200 ? v : null;
        return Array.from({ length: n }, () => (rng.chance(0.5) ? small : otherType(rng, small)));
      }),
  },
  { weight: 1, big: true, op: (rng, root) => atPlace(rng, root, () => HOLE) },
  {
    weight: 1,
    big: true,
    op: (rng, root) => {
      // Batches: several copies of the message, some mutated again, as one JSON-RPC batch frame.
      if (JSON.stringify(root).length > 10_000) return root;
      const n = rng.pick([1, 2, 5, 20, 101, 150]);
      return Array.from({ length: n }, () => (rng.chance(0.7) ? clone(root) : atPlace(rng, clone(root), (v) => otherType(rng, v))));
    },
  },
];

function atPlace(rng: Rng, root: Json, replace: (v: Json) => Json): Json {
  const ps = places(root);
  if (ps.length === 0 || rng.chance(0.05)) return replace(root);
  const p = rng.pick(ps);
  const parent = p.parent as Record<string | number, Json>;
  parent[p.key] = replace(parent[p.key] as Json);
  return root;
}

type TextOp = (rng: Rng, text: string) => string;

const textOps: { weight: number; op: TextOp }[] = [
  { weight: 4, op: (rng, t) => t.slice(0, rng.int(t.length)) },
  {
    weight: 4,
    op: (rng, t) => {
      if (t.length === 0) return t;
      const i = rng.int(t.length);
      const flipped = t.charCodeAt(i) ^ (1 << rng.int(8));
      return t.slice(0, i) + String.fromCharCode(flipped) + t.slice(i + 1);
    },
  },
  { weight: 2, op: (rng, t) => { const i = rng.int(t.length + 1); return t.slice(0, i) + rng.pick(["{", "}", "[", "]", '"', "\\", ",", ":", "\u0000", "😀", "\\u0000", "\\ud800"]) + t.slice(i); } },
  { weight: 2, op: (rng, t) => { const i = rng.int(t.length); return t.slice(0, i) + t.slice(i + 1 + rng.int(20)); } },
  { weight: 1, op: (rng, t) => { const i = rng.int(t.length); const j = Math.min(t.length, i + rng.int(200)); return t.slice(0, j) + t.slice(i, j) + t.slice(j); } },
];

function pickWeighted<T extends { weight: number }>(rng: Rng, xs: readonly T[]): T {
  const total = xs.reduce((s, x) => s + x.weight, 0);
  let r = rng.next() * total;
  for (const x of xs) {
    r -= x.weight;
    if (r < 0) return x;
  }
  return xs[xs.length - 1] as T;
}

function deepNesting(rng: Rng): string {
  const depth = rng.pick([64, 512, 4096, 30_000]);
  return rng.chance(0.5) ? "[".repeat(depth) + "]".repeat(depth) : '{"a":'.repeat(depth) + "1" + "}".repeat(depth);
}

/** One mutant of `base`, as the text to send. */
export function mutate(rng: Rng, base: unknown): string {
  let value = clone(base) as Json;
  const ops = 1 + rng.int(3);
  let text: string | null = null;
  for (let i = 0; i < ops; i++) {
    if (text === null && rng.chance(0.7)) {
      const t = pickWeighted(rng, treeOps);
      value = t.op(rng, value);
      if (t.big) break;
      continue;
    }
    text ??= JSON.stringify(value);
    text = pickWeighted(rng, textOps).op(rng, text);
  }
  text ??= JSON.stringify(value);
  // One deeply nested value per frame at most; further holes become plain zeros.
  text = text.replace(HOLE_JSON, deepNesting(rng)).replaceAll(HOLE_JSON, "0");
  return text;
}

/** Mutants larger than this are drawn again: the hand-written frames cover the huge ones. */
export const MAX_MUTANT_CHARS = 400_000;

/** A mutant of `base` no larger than MAX_MUTANT_CHARS. */
export function boundedMutant(rng: Rng, base: unknown): string {
  for (;;) {
    const text = mutate(rng, base);
    if (text.length <= MAX_MUTANT_CHARS) return text;
  }
}
