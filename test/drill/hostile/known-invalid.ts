/**
 * Calls the API contract refuses, written by hand. The fuzzer judges its mutants with the agent's
 * own schemas (a mutant they accept is not sent), so a schema grown too lax would go unnoticed by
 * it: these are judged by the rules the README and the issue state instead (an AoR has one @, a
 * target is a SIP URI, no NUL, the field limits, q within -1..1, at most 5,000 edits), and each
 * must be refused as invalid params (-32602), not taken, not answered with an internal error.
 */
import { ErrorCode } from "../../../agent/contract/errors.js";

export interface InvalidCall {
  what: string;
  method: string;
  params: unknown;
}

const D = "example.com";
const FAR = 4_000_000_000;
const binding = (over: Record<string, unknown>) => ({ aor: `sip:dfzki@${D}`, contact: "sip:dfzki@192.0.2.11:5060", expires: FAR, ...over });
const publish = (what: string, over: Record<string, unknown>): InvalidCall => ({
  what, method: "location.publish", params: { edits: [{ op: "upsert", binding: binding(over) }] },
});

export const KNOWN_INVALID: readonly InvalidCall[] = [
  { what: "alias without @", method: "alias.set", params: { alias: "dfzki-noat", target: `sip:t@${D}` } },
  { what: "target without a scheme", method: "alias.set", params: { alias: `sip:dfzki1@${D}`, target: `t@${D}` } },
  { what: "target with a space", method: "alias.set", params: { alias: `sip:dfzki2@${D}`, target: `sip:t t@${D}` } },
  { what: "target with a NUL", method: "alias.set", params: { alias: `sip:dfzki3@${D}`, target: `sip:t@${D}\u0000x` } },
  { what: "alias over 128 characters", method: "alias.set", params: { alias: `sip:dfzki${"x".repeat(130)}@${D}`, target: `sip:t@${D}` } },
  { what: "alias with two @", method: "alias.set", params: { alias: `sip:dfzki@a@${D}`, target: `sip:t@${D}` } },
  { what: "both alias.set preconditions", method: "alias.set", params: { alias: `sip:dfzki4@${D}`, target: `sip:t@${D}`, ifAbsent: true, expectTarget: `sip:u@${D}` } },
  { what: "alias.set with an unknown field", method: "alias.set", params: { alias: `sip:dfzki5@${D}`, target: `sip:t@${D}`, ttl: 5 } },
  { what: "alias.remove of a name without @", method: "alias.remove", params: { alias: "dfzki-noat" } },
  publish("negative expires", { expires: -1 }),
  publish("q above 1", { q: 1.5 }),
  publish("an http contact", { contact: "http://dfzki.example.com/" }),
  publish("an AoR with two @", { aor: `sip:dfzki@a@${D}` }),
  publish("a socket with an unknown transport", { socket: "bogus:127.0.0.1:5060" }),
  publish("a Call-ID with a lone surrogate", { callid: "c\ud800d" }),
  publish("a user agent over 255 characters", { userAgent: "u".repeat(256) }),
  publish("a CSeq over 2^32-1", { cseq: 2 ** 32 }),
  publish("a path over 512 characters", { path: `<sip:${"p".repeat(520)};lr>` }),
  publish("a fractional expires", { expires: FAR + 0.5 }),
  publish("a binding with an unknown field", { color: "red" }),
  { what: "no edits", method: "location.publish", params: { edits: [] } },
  {
    what: "5,001 edits", method: "location.publish",
    params: { edits: Array.from({ length: 5001 }, (_, i) => ({ op: "upsert", binding: binding({ contact: `sip:dfzki@192.0.2.11:${5000 + (i % 1000)}` }) })) },
  },
  { what: "an unknown edit op", method: "location.publish", params: { edits: [{ op: "frobnicate", aor: `sip:dfzki@${D}` }] } },
  { what: "a lookup of an empty AoR", method: "location.lookup", params: { aor: "" } },
  { what: "a page of 0", method: "alias.list", params: { limit: 0 } },
  { what: "a page of 1,001", method: "location.list", params: { limit: 1001 } },
  { what: "a search of 257 characters", method: "alias.list", params: { search: "s".repeat(257) } },
  { what: "a cursor that is not a pair", method: "location.list", params: { after: "not a cursor" } },
  { what: "a resync from a malformed node id", method: "cluster.resync", params: { peer: "bad id!" } },
];

export interface InvalidFigures {
  sent: number;
  /** Calls answered otherwise than with -32602: must be 0. */
  notRefused: number;
  examples: string[];
}

/** Sends every case through `call` (resolves with the result, rejects with `{ code, message }`). */
export async function sendKnownInvalid(call: (method: string, params: unknown) => Promise<unknown>): Promise<InvalidFigures> {
  const fig: InvalidFigures = { sent: 0, notRefused: 0, examples: [] };
  for (const c of KNOWN_INVALID) {
    fig.sent++;
    const outcome = await call(c.method, c.params).then(
      (result) => `taken: ${JSON.stringify(result).slice(0, 100)}`,
      (err: { code?: number; message?: string }) => (err.code === ErrorCode.InvalidParams ? null : `answered ${err.code ?? "?"} ${String(err.message).slice(0, 100)}`),
    );
    if (outcome !== null) {
      fig.notRefused++;
      fig.examples.push(`${c.what} (${c.method}): ${outcome}`);
    }
  }
  return fig;
}
