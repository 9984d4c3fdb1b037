/**
 * Reading the fields of an untrusted evapi event (register-event.ts, contact-header.ts): each is
 * type-checked and bounded, strings with NUL or lone surrogates are refused, and every failure is an
 * EventFormatError naming where in the event it was.
 */
import { unstorable } from "../contract/sip-uri.js";
import { EventFormatError } from "./event-format-error.js";

export type Obj = Record<string, unknown>;

export const U32 = 4294967295;

export function asObject(v: unknown, where: string): Obj {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new EventFormatError(`${where} must be a JSON object, got ${typeName(v)}`);
  return v as Obj;
}

export function field(o: Obj, key: string): unknown {
  return Object.hasOwn(o, key) ? o[key] : undefined;
}

export function str(o: Obj, key: string, where: string, max: number): string {
  const v = field(o, key);
  if (typeof v !== "string") throw new EventFormatError(`${where}.${key} must be a string, got ${typeName(v)}`);
  if (v.length > max) throw new EventFormatError(`${where}.${key} is longer than ${max} characters`);
  noNul(v, `${where}.${key}`);
  return v;
}

/** A string that Kamailio may leave out when unset; missing means "". */
export function optStr(o: Obj, key: string, where: string, max: number): string {
  return field(o, key) === undefined ? "" : str(o, key, where, max);
}

/**
 * A string kept for information only (a user agent), cut to `max` characters: a phone's longer
 * one still registers (Kamailio answers 200), so the event must not be dropped for it.
 */
export function optStrCut(o: Obj, key: string, where: string, max: number): string {
  const v = optStr(o, key, where, 64 * 1024);
  if (v.length <= max) return v;
  let cut = v.slice(0, max);
  // Not half a surrogate pair at the cut.
  if (/[\ud800-\udbff]$/.test(cut)) cut = cut.slice(0, -1);
  return cut;
}

export function int(o: Obj, key: string, where: string, min: number, max: number): number {
  const v = field(o, key);
  if (typeof v !== "number" || !Number.isInteger(v)) throw new EventFormatError(`${where}.${key} must be an integer, got ${typeName(v)}`);
  if (v < min || v > max) throw new EventFormatError(`${where}.${key} ${v} is outside ${min}..${max}`);
  return v;
}

/** An unsigned 32-bit field. Kamailio prints some as signed ints (all-methods 0xFFFFFFFF as -1). */
export function u32(o: Obj, key: string, where: string, dflt = 0): number {
  if (field(o, key) === undefined) return dflt;
  return int(o, key, where, -2147483648, U32) >>> 0;
}

/** NUL and lone surrogates: what Kamailio could not hold as it is (contract/sip-uri.ts unstorable). */
export function noNul(s: string, where: string): void {
  const problem = unstorable(s);
  if (problem) throw new EventFormatError(`${where} ${problem}`);
}

export function typeName(v: unknown): string {
  return v === null ? "null" : Array.isArray(v) ? "array" : typeof v;
}

/**
 * A value for an error message. JSON.stringify throws a RangeError on deeply nested input (the
 * fuzz drill sends 30,000 levels), which would break this module's promise to throw only
 * EventFormatError.
 */
export function show(v: unknown): string {
  try {
    return JSON.stringify(v) ?? "undefined";
  } catch {
    return `a deeply nested ${typeName(v)}`;
  }
}

export function clip(s: string): string {
  return JSON.stringify(s.length > 60 ? s.slice(0, 60) + "…" : s);
}
