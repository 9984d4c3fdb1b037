/**
 * Writes planned from the journal some time before they go out (a reload's backlog, a reconcile's
 * repairs) may be older than the journal by then: a de-REGISTER or a refresh stored meanwhile is
 * the sink's to write, and the planned write landing after the sink's would undo it until the next
 * reconcile. A watch tells which records changed since it began, or since a given moment, so that
 * such a write is skipped, or followed by the journal's current version when the record changed
 * while the write was on its way.
 */
import type { Change, VersionVector } from "../contract/records.js";
import type { ReplicaStore } from "../core/store.js";
import { opKey, planRestore, recordKey, type InstallOp, type PlanContext } from "./install-plan.js";
import type { KamailioWriter } from "./kamailio-writer.js";

/** Tells of every change stored from now on (local commits and peers' changes); returns the unsubscribe. */
export type OnStored = (listener: (changes: readonly Change[]) => void) => () => void;

export interface ChangeWatch {
  /** A mark to compare later changes with. */
  now(): number;
  /** The record (recordKey / opKey) changed after `mark` (0: since the watch began). */
  changedAfter(key: string, mark: number): boolean;
  close(): void;
}

export function watchChanges(onStored: OnStored | undefined): ChangeWatch {
  return createWatch(onStored, () => true).watch;
}

/**
 * A watch that counts only the changes stored after the journal position it returns, read once it
 * listens. A reload writes every live record stored up to that position itself and leaves the later
 * changes to the sink, which then need not write the earlier ones again (due-reload.ts): the two
 * must split the journal at the same point. A journal commit and its notice are two steps, so a
 * change stored just before the position may be heard just after the watch began; counted as
 * "changed", the reload would skip it while the sink leaves it to the reload.
 */
export async function watchChangesAfter(onStored: OnStored | undefined, position: () => Promise<VersionVector>): Promise<{ watch: ChangeWatch; upTo: VersionVector }> {
  let upTo: VersionVector | null = null;
  const early: Change[] = [];
  const after = (c: Change): boolean => c.seq > (upTo![c.origin] ?? 0);
  const w = createWatch(onStored, (c) => {
    if (upTo !== null) return after(c);
    early.push(c);
    return false;
  });
  try {
    upTo = await position();
  } catch (err) {
    w.watch.close();
    throw err;
  }
  w.note(early.filter(after));
  return { watch: w.watch, upTo };
}

function createWatch(onStored: OnStored | undefined, counts: (c: Change) => boolean) {
  const last = new Map<string, number>();
  let count = 0;
  const note = (changes: readonly Change[]): void => {
    for (const c of changes) last.set(recordKey(c), ++count);
  };
  const off = onStored?.((changes) => note(changes.filter(counts)));
  const watch: ChangeWatch = {
    now: () => count,
    changedAfter: (key, mark) => (last.get(key) ?? 0) > mark,
    close: () => off?.(),
  };
  return { watch, note };
}

/** Writes what the journal holds now for the record `op` wrote (a removal for a tombstone). */
export async function writeCurrent(store: ReplicaStore, writer: KamailioWriter, op: InstallOp, plan: Omit<PlanContext, "nowSec">, nowSec: number): Promise<void> {
  const c = op.op === "add" ? await store.get("loc", op.aor, op.binding.contact)
    : op.op === "rm-contact" ? await store.get("loc", op.aor, op.contact)
    : await store.get("alias", op.alias, "");
  if (c === null) return;
  const current = c.kind === "loc" && c.value === null
    ? { op: "rm-contact" as const, table: plan.locationTable, aor: c.key, contact: c.sub }
    : planRestore(c, { ...plan, nowSec });
  if (current !== null) await writer.write(current, nowSec);
}

/**
 * Writes `op` unless its record changed since `watch` began (false: skipped, as the sink writes
 * the newer version, or has). One that changes while its write is on the way, perhaps written by
 * the sink before it landed, is followed by the journal's version, so the older one does not stay.
 * Each write takes the clock of its moment: ul.add's expires is relative to it.
 */
export async function writeUnlessStale(
  op: InstallOp,
  d: { watch: ChangeWatch; writer: KamailioWriter; store: ReplicaStore; plan: Omit<PlanContext, "nowSec">; nowSec: () => number },
): Promise<boolean> {
  const key = opKey(op);
  if (d.watch.changedAfter(key, 0)) return false;
  const before = d.watch.now();
  await d.writer.write(op, d.nowSec());
  if (d.watch.changedAfter(key, before)) await writeCurrent(d.store, d.writer, op, d.plan, d.nowSec());
  return true;
}
