/** Builders shared by the unit and property tests. No I/O except `makeTempDirs`. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AliasValue, BindingValue, Change, RecordKind, RecordValue } from "../../agent/contract/records.js";
import type { Draft, RemoteBatch } from "../../agent/core/store.js";

/** Replica ids that sort in the order of their names (a < b < c). */
export const REPLICA_A = "alpha~00000000000a";
export const REPLICA_B = "bravo~00000000000b";
export const REPLICA_C = "charlie~00000000000c";

export function binding(overrides: Partial<BindingValue> = {}): BindingValue {
  return {
    expires: 0,
    q: -1,
    path: "",
    received: "",
    socket: "",
    callid: "call-1",
    cseq: 1,
    userAgent: "test",
    flags: 0,
    cflags: 0,
    methods: 4294967295,
    instance: "",
    regId: 0,
    owner: "n1",
    ruid: "",
    ...overrides,
  };
}

export function aliasValue(target: string): AliasValue {
  return { target };
}

export function locDraft(aor: string, contact: string, value: BindingValue | null): Draft {
  return { kind: "loc", key: aor, sub: contact, value };
}

export function aliasDraft(alias: string, target: string | null): Draft {
  return { kind: "alias", key: alias, sub: "", value: target === null ? null : aliasValue(target) };
}

/** A version as a peer would send it. */
export function remoteChange(
  origin: string,
  seq: number,
  hlc: number,
  draft: { kind: RecordKind; key: string; sub: string; value: RecordValue | null },
): Change {
  return { kind: draft.kind, key: draft.key, sub: draft.sub, value: draft.value, hlc, origin, seq };
}

/** A batch covering (after, upTo] made of `changes`. */
export function batchOf(origin: string, after: number, upTo: number, changes: Change[]): RemoteBatch {
  return { origin, after, upTo, changes };
}

/** A `stamp` callback for commitLocal that counts up from `start`. */
export function counterStamp(start = 1000): () => number {
  let n = start;
  return () => n++;
}

/** Temp folders under os.tmpdir(), removed by `cleanup()` (call it from afterEach). */
export function makeTempDirs(prefix = "locmesh-test-") {
  const dirs: string[] = [];
  return {
    make(): string {
      const dir = mkdtempSync(join(tmpdir(), prefix));
      dirs.push(dir);
      return dir;
    },
    cleanup(): void {
      for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
    },
  };
}

/** The fields that define a record's state, for comparing dumps across replicas. */
export function identity(c: Change) {
  return { kind: c.kind, key: c.key, sub: c.sub, value: c.value, hlc: c.hlc, origin: c.origin };
}
