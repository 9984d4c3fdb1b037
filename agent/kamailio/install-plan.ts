/**
 * What writing one journal record into the local Kamailio means, as data: pure, no I/O, so the
 * sink, the reconciler and the reload share one definition and unit tests cover every case.
 *
 * - A live binding becomes `ul.add` (insert or update by contact URI, kamailio-5.6.md §2.1).
 * - A removed or expired binding becomes `ul.rm_contact` (404 counts as done).
 * - An alias goes to usrloc's SER-style "aliases" domain (§5: AoR = alias, contact = target,
 *   permanent), or to alias_db's `dbaliases` table, which has no RPC and is written through the
 *   database only.
 *
 * Bindings over connection-oriented transports (TCP, TLS, WS, WSS, SCTP) reach the phone only
 * through the connection on the node that took the REGISTER. Other nodes install them with a Path
 * through that node: a loose route to the owner's listen socket carrying `received=` for the
 * path module (`modparam("path","use_received",1)`), which on the owner sets the destination to
 * the phone's connection (issue 3, "Calls reach phones on other nodes").
 */
import type { AliasValue, BindingValue, Change, RecordKind } from "../contract/records.js";
import type { UlAddBinding } from "./usrloc-rpc.js";

export type AliasMode = "usrloc" | "dbaliases";

export type InstallOp =
  | { op: "add"; table: string; aor: string; binding: UlAddBinding; full: BindingValue }
  | { op: "rm-contact"; table: string; aor: string; contact: string }
  | { op: "alias-set"; alias: string; target: string }
  | { op: "alias-rm"; alias: string };

export interface PlanContext {
  /** This agent's node id. */
  nodeId: string;
  /** This agent's replica id: its own location changes came from its Kamailio and are never written back. */
  replicaId: string;
  /** usrloc domain for bindings, normally "location". */
  locationTable: string;
  nowSec: number;
}

const CONNECTION_PROTOS = new Set(["tcp", "tls", "ws", "wss", "sctp"]);

/** `tcp:10.0.0.1:5060` → { proto, host, port }; IPv6 hosts come bracketed or bare. */
export function parseSocket(socket: string): { proto: string; host: string; port: string } | null {
  const m = /^([a-z]+):(\[[0-9a-fA-F:.]+\]|[^:]+|[0-9a-fA-F:.]+):(\d{1,5})$/.exec(socket);
  if (!m) return null;
  const host = m[2]!.includes(":") && !m[2]!.startsWith("[") ? `[${m[2]}]` : m[2]!;
  return { proto: m[1]!, host, port: m[3]! };
}

/** Escapes a URI for a `received=` URI parameter value, as the path module's add_path_received does. */
function escapeParam(v: string): string {
  return v.replace(/[^A-Za-z0-9\-_.!~*'()[\]/:&+$]/g, escapeChar);
}

const hexByte = (b: number): string => `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
const escapeChar = (c: string): string => (c.length === 1 && c.charCodeAt(0) < 0x80 ? hexByte(c.charCodeAt(0)) : Array.from(Buffer.from(c, "utf8"), hexByte).join(""));

/**
 * The Path other nodes install for a binding that lives on the owner's connection, or null when
 * the binding can be reached directly (UDP, or no socket known).
 */
export function ownerRoute(b: Pick<BindingValue, "socket" | "received">): string | null {
  const s = parseSocket(b.socket);
  if (!s || !CONNECTION_PROTOS.has(s.proto)) return null;
  // WebSocket listeners also take SIP over plain TCP on the same port; TLS stays TLS.
  const transport = s.proto === "wss" || s.proto === "tls" ? "tls" : s.proto === "sctp" ? "sctp" : "tcp";
  const received = b.received !== "" ? `;received=${escapeParam(b.received)}` : "";
  return `<sip:${s.host}:${s.port};transport=${transport};lr${received}>`;
}

/** The ul.add view of a binding as this node installs it. */
export function ulBinding(contact: string, v: BindingValue, nodeId: string): UlAddBinding {
  const foreign = v.owner !== nodeId;
  const route = foreign ? ownerRoute(v) : null;
  return {
    contact,
    expires: v.expires,
    q: v.q,
    path: route === null ? v.path : v.path === "" ? route : `${route},${v.path}`,
    received: route === null ? v.received : "",
    // Another node's listen socket is not ours; Kamailio picks its own.
    socket: foreign ? "" : v.socket,
    flags: v.flags,
    cflags: v.cflags,
    methods: v.methods,
  };
}

/**
 * The Kamailio write for one record, or null when there is nothing to write: this node's own
 * location changes came from its Kamailio (the registrar) and are already there.
 */
export function planInstall(change: Change, ctx: PlanContext): InstallOp | null {
  if (change.kind === "alias") {
    if (change.value === null) return { op: "alias-rm", alias: change.key };
    return { op: "alias-set", alias: change.key, target: (change.value as AliasValue).target };
  }
  if (installedKind(change.origin, ctx) === "alias") return null;
  // This node's own registrations from an earlier epoch of its journal (a lost disk, a journal
  // moved aside) come back from its peers. Its Kamailio took those REGISTERs itself: it holds
  // them, or the phone de-registered while the journal was away, and writing them would bring
  // such a phone back (and relabel the rest as installed by the agent). The reconcile decides:
  // it removes from the journal what Kamailio no longer holds. A Kamailio that restarted since
  // gets them from the reload (planRestore).
  if (isEarlierEpochOf(change.origin, ctx) && change.value !== null && (change.value as BindingValue).owner === ctx.nodeId) return null;
  return planBinding(change, ctx);
}

/** A replica id this node's journal had before its current one (replica ids are `<nodeId>~<random>`). */
const isEarlierEpochOf = (origin: string, ctx: Pick<PlanContext, "nodeId" | "replicaId">): boolean =>
  origin !== ctx.replicaId && origin.startsWith(`${ctx.nodeId}~`);

/**
 * The one kind of an origin's records that planInstall may write, or null for both: only aliases
 * of this node's own, so the sink need not read back the bindings its Kamailio reported.
 */
export function installedKind(origin: string, ctx: Pick<PlanContext, "replicaId">): RecordKind | null {
  return origin === ctx.replicaId ? "alias" : null;
}

/** Like planInstall but for every record, own bindings included (a Kamailio that lost its memory). */
export function planRestore(change: Change, ctx: PlanContext): InstallOp | null {
  if (change.kind === "alias") return planInstall(change, ctx);
  if (change.value === null) return null;
  return planBinding(change, ctx);
}

function planBinding(change: Change, ctx: PlanContext): InstallOp {
  const v = change.value as BindingValue | null;
  const live = v !== null && (v.expires === 0 || v.expires > ctx.nowSec);
  if (!live) return { op: "rm-contact", table: ctx.locationTable, aor: change.key, contact: change.sub };
  return { op: "add", table: ctx.locationTable, aor: change.key, binding: ulBinding(change.sub, v, ctx.nodeId), full: v };
}

/** Identity of one Kamailio object (a binding or an alias), as a map key. */
export const bindingKey = (aor: string, contact: string): string => `loc\u0000${aor}\u0000${contact}`;
export const aliasKey = (alias: string): string => `alias\u0000${alias}`;

/** The key of the Kamailio object a journal record stands for. */
export function recordKey(c: Pick<Change, "kind" | "key" | "sub">): string {
  return c.kind === "loc" ? bindingKey(c.key, c.sub) : aliasKey(c.key);
}

/** The record a key from recordKey (bindingKey, aliasKey) names. */
export function parseRecordKey(key: string): { kind: RecordKind; key: string; sub: string } {
  const [kind, k = "", sub = ""] = key.split("\u0000");
  return kind === "alias" ? { kind: "alias", key: k, sub: "" } : { kind: "loc", key: k, sub };
}

/** Key that identifies the Kamailio object an op touches; ops on one key must not overlap. */
/** An alias write (set or removal), as opposed to a binding's. */
export const isAliasOp = (op: InstallOp): boolean => op.op === "alias-set" || op.op === "alias-rm";

export function opKey(op: InstallOp): string {
  switch (op.op) {
    case "add":
      return bindingKey(op.aor, op.binding.contact);
    case "rm-contact":
      return bindingKey(op.aor, op.contact);
    default:
      return aliasKey(op.alias);
  }
}
