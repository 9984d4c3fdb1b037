/**
 * The replicated data model. Pure types and functions: no Node imports, so the hub and the web UI
 * can share them.
 *
 * Two record kinds live in one keyspace:
 * - `loc`: a location binding, keyed by (AoR, contact URI). Kamailio's usrloc matches contacts by
 *   URI within an AoR (matching_mode 0), so that pair is the identity of a binding.
 * - `alias`: a call-forward alias, keyed by the alias URI; its value is the target URI.
 *
 * Every version of a record carries a hybrid logical clock stamp and the replica that made it.
 * Concurrent versions resolve by last-writer-wins on (hlc, origin): the same answer on every node,
 * whatever order they arrive in.
 */

export type RecordKind = "loc" | "alias";

/** What a REGISTER leaves behind for one contact. Field meanings follow Kamailio's `location` table. */
export interface BindingValue {
  /** Absolute expiry, Unix seconds; 0 means permanent. */
  expires: number;
  /** -1 when the contact gave no q (Kamailio's Q_UNSPECIFIED), else 0..1. */
  q: number;
  path: string;
  received: string;
  socket: string;
  callid: string;
  cseq: number;
  userAgent: string;
  flags: number;
  cflags: number;
  /** Allowed-methods bitmask; 4294967295 = all. */
  methods: number;
  instance: string;
  regId: number;
  /** Node id of the agent whose Kamailio took the REGISTER. */
  owner: string;
  /** Kamailio's ruid on the owning node, when known. */
  ruid: string;
}

export interface AliasValue {
  target: string;
}

export type RecordValue = BindingValue | AliasValue;

/** A version of one record as it travels between replicas and sits in the journal. */
export interface Change {
  kind: RecordKind;
  /** AoR for `loc`, alias URI for `alias`. */
  key: string;
  /** Contact URI for `loc`, empty for `alias`. */
  sub: string;
  /** null is a tombstone: the record was removed. */
  value: RecordValue | null;
  /** Hybrid logical clock stamp: milliseconds × 1024 + logical counter. */
  hlc: number;
  /** Replica id (`node~epoch`) that made this version. */
  origin: string;
  /** Position of this version in its origin's sequence (1, 2, 3, ...). */
  seq: number;
}

export interface Location extends BindingValue {
  aor: string;
  contact: string;
}

export interface Alias {
  alias: string;
  target: string;
}

/** Version vector: for each origin, the highest sequence number a replica holds without gaps. */
export type VersionVector = Record<string, number>;

/** Total order of versions: >0 when a is newer than b. Ties on hlc break by origin id. */
export function compareVersions(a: Pick<Change, "hlc" | "origin">, b: Pick<Change, "hlc" | "origin">): number {
  if (a.hlc !== b.hlc) return a.hlc > b.hlc ? 1 : -1;
  if (a.origin === b.origin) return 0;
  return a.origin > b.origin ? 1 : -1;
}

/** A binding counts as present until its absolute expiry passes; 0 is permanent. */
export function isLive(change: Pick<Change, "kind" | "value">, nowSec: number): boolean {
  if (change.value === null) return false;
  if (change.kind !== "loc") return true;
  const expires = (change.value as BindingValue).expires;
  return expires === 0 || expires > nowSec;
}

export function toLocation(change: Change): Location {
  return { aor: change.key, contact: change.sub, ...(change.value as BindingValue) };
}

export function toAlias(change: Change): Alias {
  return { alias: change.key, target: (change.value as AliasValue).target };
}

/** Milliseconds of wall-clock time encoded in an HLC stamp. */
export function hlcToMillis(hlc: number): number {
  return Math.floor(hlc / HLC_UNITS_PER_MS);
}

export const HLC_UNITS_PER_MS = 1024;
