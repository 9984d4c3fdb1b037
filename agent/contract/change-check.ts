/**
 * A hand-written fast path for the peer protocol's hottest validation: the changes in a batch.
 * zod stays the source of truth and the source of error messages: a batch that fails here is
 * parsed again with `batchParams` to say exactly what is wrong. This check only ever accepts
 * what the zod schema accepts unchanged (a property test holds the two together); it is about
 * three times faster, which matters when a recovering node takes 100,000 changes at once.
 * The same check screens this node's own changes before they are journaled (recordProblem,
 * agent/core/local-check.ts): what a peer would refuse never enters the journal.
 */
import { NODE_ID_RE, REPLICA_ID_RE } from "./ids.js";
import { recordSchema } from "./record-schemas.js";
import type { Change } from "./records.js";
import { LIMITS, checkSipUri, checkSocket, normalizeAor, unstorable } from "./sip-uri.js";

const BINDING_KEYS = 15;

const isInt = (v: unknown, min: number, max: number): boolean =>
  typeof v === "number" && Number.isInteger(v) && v >= min && v <= max;
const isText = (v: unknown, max: number): boolean => typeof v === "string" && v.length <= max && unstorable(v) === null;
const isUint32 = (v: unknown) => isInt(v, 0, 4294967295);
const plain = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function isBinding(v: Record<string, unknown>): boolean {
  return (
    Object.keys(v).length === BINDING_KEYS &&
    isInt(v["expires"], 0, 2 ** 40) &&
    typeof v["q"] === "number" && v["q"] >= -1 && v["q"] <= 1 &&
    isText(v["path"], LIMITS.path) &&
    isText(v["received"], LIMITS.received) &&
    typeof v["socket"] === "string" && checkSocket(v["socket"]) === null &&
    isText(v["callid"], LIMITS.callid) &&
    isUint32(v["cseq"]) &&
    isText(v["userAgent"], LIMITS.userAgent) &&
    isUint32(v["flags"]) &&
    isUint32(v["cflags"]) &&
    isUint32(v["methods"]) &&
    isText(v["instance"], LIMITS.instance) &&
    isUint32(v["regId"]) &&
    typeof v["owner"] === "string" && NODE_ID_RE.test(v["owner"]) &&
    isText(v["ruid"], 64)
  );
}

/** True when `x` is a change the wire schema accepts as it is (keys already normalised). */
export function isWellFormedChange(x: unknown): x is Change {
  if (!plain(x) || Object.keys(x).length !== 7) return false;
  const { hlc, origin, seq } = x;
  if (!isInt(hlc, 0, Number.MAX_SAFE_INTEGER) || !isInt(seq, 1, Number.MAX_SAFE_INTEGER)) return false;
  if (typeof origin !== "string" || !REPLICA_ID_RE.test(origin)) return false;
  return isWellFormedRecord(x);
}

/** The record part of a change (kind, key, sub, value) as isWellFormedChange checks it. */
function isWellFormedRecord(x: Record<string, unknown>): boolean {
  const { kind, key, sub, value } = x;
  if (typeof key !== "string") return false;
  const n = normalizeAor(key);
  if (!("aor" in n) || n.aor !== key) return false;
  if (kind === "loc") {
    if (typeof sub !== "string" || checkSipUri(sub) !== null) return false;
    return value === null || (plain(value) && isBinding(value));
  }
  if (kind === "alias") {
    if (sub !== "") return false;
    return value === null || (plain(value) && Object.keys(value).length === 1 && typeof value["target"] === "string" && checkSipUri(value["target"]) === null);
  }
  return false;
}

/**
 * What a peer would refuse in a change this node is about to journal (its kind, key, sub and
 * value; the version is the journal's own), said as the peer would say it ("key: AoR "alice" must
 * look like user@domain…"), or null when every peer takes it as it is. A peer normalises a key it
 * can (sip:, upper case) instead of refusing it, but would then hold it under another key than
 * this node: that is refused here too.
 */
export function recordProblem(d: Pick<Change, "kind" | "key" | "sub" | "value">): string | null {
  const record = { kind: d.kind, key: d.key, sub: d.sub, value: d.value };
  if (isWellFormedRecord(record)) return null;
  const parsed = recordSchema.safeParse(record);
  if (!parsed.success) {
    return parsed.error.issues.slice(0, 3).map((i) => (i.path.length > 0 ? `${i.path.join(".")}: ${i.message}` : i.message)).join("; ");
  }
  // The fast check is stricter than the schema only where the schema would change the change.
  if (parsed.data.key !== d.key) return `key: AoR ${JSON.stringify(d.key.slice(0, 80))} is not as usrloc keys it (${JSON.stringify(parsed.data.key.slice(0, 80))}: lower case, without sip:)`;
  return null;
}
