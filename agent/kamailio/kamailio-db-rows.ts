/**
 * One usrloc row (location, or the SER-style aliases domain table) ↔ a DbBinding, with Kamailio's
 * encodings (kamailio-5.6.md §4.2). Pure; the time encoding comes from the driver.
 */
import {
  decodeMethods, decodeQ, encodeMethods, fromInt32, joinAor, nullIfEmpty, toInt32,
} from "./kamailio-db-encoding.js";
import type { BindingValue } from "../contract/records.js";
import type { Row, SqlDriver } from "./kamailio-db-sql.js";

/**
 * One binding as the fallback writes it: locmesh's BindingValue (field meanings follow the
 * location table) without `owner`, which Kamailio has no column for, plus the contact URI.
 * `ruid` may be "": a fresh one is made when the row is inserted.
 */
export interface DbBinding extends Omit<BindingValue, "owner"> {
  contact: string;
}

/** Columns we (re)write on every upsert; identity (ruid, username, domain, contact) and server-side fields stay. */
export const BINDING_COLUMNS = [
  "expires", "q", "path", "received", "socket", "callid", "cseq", "user_agent", "flags", "cflags", "methods", "instance", "reg_id", "last_modified",
] as const;

export function bindingValues(driver: SqlDriver, b: DbBinding, nowSec: number): unknown[] {
  return [
    driver.encodeTime(b.expires), b.q, nullIfEmpty(b.path), nullIfEmpty(b.received), nullIfEmpty(b.socket), b.callid, toInt32(b.cseq),
    b.userAgent, toInt32(b.flags), toInt32(b.cflags), encodeMethods(b.methods), nullIfEmpty(b.instance), toInt32(b.regId),
    driver.encodeTime(nowSec),
  ];
}

/**
 * Columns only an insert sets: server_id 0 (Kamailio's default server_id), connection_id -1 (what
 * Kamailio writes for UDP and RPC contacts: there is no TCP connection of ours to point at),
 * keepalive 0, partition 0.
 */
export const INSERT_ONLY_COLUMNS = ["server_id", "connection_id", "keepalive", "partition"] as const;
export const INSERT_ONLY_VALUES = [0, -1, 0, 0] as const;

const text = (v: unknown): string => (v === null || v === undefined ? "" : String(v));

export function decodeBindingRow(driver: SqlDriver, r: Row): DbBinding & { aor: string; lastModified: number } {
  return {
    aor: joinAor(text(r["username"]), r["domain"] as string | null),
    contact: text(r["contact"]),
    expires: driver.decodeTime(r["expires"]),
    q: decodeQ(r["q"] as number | null),
    path: text(r["path"]),
    received: text(r["received"]),
    socket: text(r["socket"]),
    callid: text(r["callid"]),
    cseq: Number(r["cseq"] ?? 0),
    userAgent: text(r["user_agent"]),
    flags: fromInt32(r["flags"] as number | null),
    cflags: fromInt32(r["cflags"] as number | null),
    methods: decodeMethods(r["methods"] as number | null),
    instance: text(r["instance"]),
    regId: Number(r["reg_id"] ?? 0),
    ruid: text(r["ruid"]),
    lastModified: driver.decodeTime(r["last_modified"]),
  };
}
