/**
 * The valid messages the fuzzer mutates, one set per input, and the hand-written nasty frames
 * every JSON-RPC surface gets first. Keys the fuzz could touch start with "dfz" (drill records).
 */
import { PROTOCOL_VERSION } from "../../../agent/contract/protocol.js";
import type { Base } from "./rpc-fuzz.js";

const DOMAIN = "example.com";
const rpc = (method: string, params?: unknown) => (id: number) => ({ jsonrpc: "2.0", id, method, ...(params === undefined ? {} : { params }) });
const notify = (method: string, params: unknown) => () => ({ jsonrpc: "2.0", method, params });
/**
 * Fixed instants, so a seed gives the same bytes on every run: an expiry far ahead (2096) and a
 * clock reading (2027) for stamps.
 */
const FAR_EXPIRY = 4_000_000_000;
const NOW_MS = 1_800_000_000_000;

const binding = () => ({
  aor: `sip:dfzapi@${DOMAIN}`, contact: "sip:dfzapi@192.0.2.10:5060;transport=udp", expires: FAR_EXPIRY, q: 0.5,
  path: "<sip:edge.example.net;lr>", received: "sip:198.51.100.7:34567", socket: "udp:127.0.0.1:5060", callid: "fuzz-call@h", cseq: 7,
  userAgent: "fuzz/1.0", flags: 0, cflags: 0, methods: 4294967295, instance: "<urn:uuid:1>", regId: 1, ruid: "r1",
});

export function apiBases(token: string): Base[] {
  return [
    rpc("location.publish", { edits: [{ op: "upsert", binding: binding() }] }),
    rpc("location.publish", { edits: [{ op: "remove", aor: `sip:dfzapi@${DOMAIN}`, contact: "sip:dfzapi@192.0.2.10" }, { op: "remove-aor", aor: `dfzapi2@${DOMAIN}` }] }),
    rpc("location.lookup", { aor: `sip:dfzapi@${DOMAIN}` }),
    rpc("location.list", { search: "dfz", after: "", limit: 10 }),
    rpc("location.list", { after: JSON.stringify(["a@b", "sip:c"]), limit: 1 }),
    rpc("alias.set", { alias: `sip:dfzalias@${DOMAIN}`, target: `sip:dfztarget@${DOMAIN}` }),
    rpc("alias.remove", { alias: `sip:dfzalias@${DOMAIN}` }),
    rpc("alias.list", { search: "", limit: 5 }),
    rpc("cluster.status", {}),
    rpc("cluster.resync", { peer: "n1" }),
    rpc("kamailio.reload", {}),
    rpc("auth.login", { token }),
    rpc("changes.subscribe", {}),
    notify("alias.set", { alias: `sip:dfzalias@${DOMAIN}`, target: `sip:dfztarget@${DOMAIN}` }),
  ];
}

export const FUZZ_ORIGIN = "fuzz~0123abcd";

const aliasChange = (seq: number) => ({ kind: "alias", key: `dfzpeer@${DOMAIN}`, sub: "", value: { target: `sip:dfzt@${DOMAIN}` }, hlc: NOW_MS * 1024, origin: FUZZ_ORIGIN, seq });
const locChange = (seq: number) => {
  const { aor: _aor, contact: _contact, ...rest } = binding();
  return { kind: "loc", key: `dfzpeer@${DOMAIN}`, sub: "sip:dfzpeer@192.0.2.9", value: { ...rest, owner: "fuzz" }, hlc: NOW_MS * 1024, origin: FUZZ_ORIGIN, seq };
};

/** The peer protocol once authenticated as "fuzz"; `vv` is the target's own version vector. */
export function peerBases(vv: Record<string, number>): Base[] {
  return [
    rpc("repl.batch", { origin: FUZZ_ORIGIN, after: 0, upTo: 2, changes: [aliasChange(1), locChange(2)] }),
    rpc("repl.batch", { origin: FUZZ_ORIGIN, after: 0, upTo: 1, changes: [aliasChange(1)] }),
    rpc("repl.pull", { vv, limit: 100, skip: [], count: false }),
    rpc("repl.status", { vv, pendingWrites: 0 }),
    notify("repl.status", { vv, pendingWrites: 0 }),
    rpc("auth.hello", { protocol: PROTOCOL_VERSION, nodeId: "fuzz", replicaId: FUZZ_ORIGIN, nonce: "0".repeat(32), mac: "0".repeat(64), vv }),
    rpc("auth.challenge", { protocol: PROTOCOL_VERSION, nodeId: "fuzz", nonce: "0".repeat(32) }),
    rpc("repl.nuke", { all: true }),
  ];
}

/** The peer protocol before authenticating: hellos with a wrong proof, and everything else. */
export function preAuthBases(): Base[] {
  return [
    rpc("auth.hello", { protocol: PROTOCOL_VERSION, nodeId: "fuzz", replicaId: FUZZ_ORIGIN, nonce: "ab".repeat(16), mac: "cd".repeat(32), vv: {} }),
    rpc("repl.batch", { origin: FUZZ_ORIGIN, after: 0, upTo: 1, changes: [aliasChange(1)] }),
    rpc("repl.pull", { vv: {}, limit: 100 }),
    notify("repl.status", { vv: {} }),
    rpc("auth.challenge", { protocol: PROTOCOL_VERSION, nodeId: "fuzz", nonce: "0".repeat(32) }),
  ];
}

const deep = (n: number) => "[".repeat(n) + "]".repeat(n);

/** Frames every JSON-RPC surface gets before the mutants. */
export function handWritten(method: string, params: unknown): string[] {
  const ok = JSON.stringify({ jsonrpc: "2.0", id: 1, method, params });
  return [
    "", " ", "\n", "null", "true", "0", "-1", "1e999", '"x"', "[]", "[null]", "[[]]", "[1,2,3]", "{}", "{{}}", "}{", "[", "{", '"',
    '{"jsonrpc":"2.0"}', '{"jsonrpc":"1.0","id":2,"method":"cluster.status"}', '{"jsonrpc":2,"id":3,"method":"cluster.status"}',
    '{"jsonrpc":"2.0","id":4,"method":null}', '{"jsonrpc":"2.0","id":5,"method":""}', '{"jsonrpc":"2.0","id":6,"method":42}',
    '{"jsonrpc":"2.0","id":{},"method":"cluster.status"}', '{"jsonrpc":"2.0","id":[7],"method":"cluster.status"}', '{"jsonrpc":"2.0","id":true,"method":"cluster.status"}',
    '{"jsonrpc":"2.0","id":8,"method":"__proto__"}', '{"jsonrpc":"2.0","id":9,"method":"constructor"}', '{"jsonrpc":"2.0","id":10,"method":"toString"}',
    '{"jsonrpc":"2.0","id":11,"method":"hasOwnProperty","params":{}}',
    `{"jsonrpc":"2.0","id":12,"method":"${method}","params":null}`, `{"jsonrpc":"2.0","id":13,"method":"${method}","params":5}`,
    `{"jsonrpc":"2.0","id":14,"method":"${method}","params":"x"}`, `{"jsonrpc":"2.0","id":15,"method":"${method}","result":1}`,
    `{"jsonrpc":"2.0","id":16,"method":"${method}","error":{"code":1}}`,
    `{"__proto__":{"jsonrpc":"2.0","method":"${method}"},"id":17}`, `{"jsonrpc":"2.0","id":18,"method":"${method}","params":{"__proto__":{"x":1}}}`,
    `{"jsonrpc":"2.0","id":19,"method":"${method}","params":${deep(50_000)}}`, `{"jsonrpc":"2.0","id":${deep(50_000)},"method":"${method}"}`,
    deep(200_000), '{"a":'.repeat(100_000) + "1" + "}".repeat(100_000),
    `[${Array.from({ length: 101 }, (_, i) => `{"jsonrpc":"2.0","id":${100 + i},"method":"cluster.status"}`).join(",")}]`,
    `[${new Array(100_000).fill("null").join(",")}]`,
    `{"jsonrpc":"2.0","id":20,"method":"${method}","params":${JSON.stringify(params)},"params":5}`,
    ok.slice(0, ok.length - 1), ok + "x", ok + ok, `${ok}\u0000`, `\ufeff${ok}`, ok.replace('"2.0"', '"2.0\\u0000"'),
    JSON.stringify({ jsonrpc: "2.0", id: "\u0000'; DROP TABLE location; --", method, params }),
    JSON.stringify({ jsonrpc: "2.0", id: "x".repeat(200_000), method: "nope" }),
    JSON.stringify({ jsonrpc: "2.0", id: 21, method: "x".repeat(200_000) }),
  ];
}

/** A register event as locmesh's include sends it over evapi, for an AoR the drill never writes. */
export function registerEvent(): Record<string, unknown> {
  const ts = tsNow();
  return {
    event: "register", rc: 1, ts, aor: `sip:dfzev@${DOMAIN}`, req_contact: "<sip:dfzev@192.0.2.20:5060>;expires=3600", req_expires: 3600,
    callid: "fuzz-ev@h", cseq: 3, user_agent: "fuzz", source: "udp:192.0.2.20:5060",
    contacts: [
      {
        addr: "sip:dfzev@192.0.2.20:5060", expires: FAR_EXPIRY, q: -1, callid: "fuzz-ev@h", cseq: 3, path: "", received: "", user_agent: "fuzz",
        ruid: "uloc-fuzz-1", socket: "udp:127.0.0.1:5060", flags: 0, cflags: 0, methods: 4294967295, instance: "", regid: 0,
      },
    ],
  };
}

export function expiredEvent(): Record<string, unknown> {
  return { event: "expired", ts: tsNow(), aor: `dfzev@${DOMAIN}`, addr: "sip:dfzev@192.0.2.20:5060", ruid: "uloc-fuzz-1", callid: "fuzz-ev@h", expires: FAR_EXPIRY };
}

/** A valid event that changes nothing: a query-only REGISTER (rc 4) of an AoR with no contacts. */
export function probeEvent(): Record<string, unknown> {
  return { event: "register", rc: 4, ts: tsNow(), aor: `sip:dfzprobe@${DOMAIN}`, req_contact: "", callid: "probe@h", cseq: 1, source: "udp:192.0.2.21:5060", contacts: [] };
}

function tsNow(): string {
  return `${Math.floor(NOW_MS / 1000)}.123456`;
}
