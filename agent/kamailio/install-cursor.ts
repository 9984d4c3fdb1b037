/**
 * How far into the journal the local Kamailio has been written: a version vector, kept in a small
 * file beside the journal. It is saved after writes, not before, so a crash repeats a few writes
 * (ul.add and ul.rm_contact are idempotent) and never skips one. A missing file means "nothing
 * written yet": the sink then writes the whole journal, which is what a fresh agent needs.
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import type { VersionVector } from "../contract/records.js";

export interface InstallCursor {
  get(): VersionVector;
  /** Sets one origin's position (only ever forwards). */
  advance(origin: string, seq: number): void;
  /** Forgets origins whose replica no longer exists in the journal. */
  reset(vv: VersionVector): void;
  /** Writes the file if anything moved since the last save. */
  save(): void;
}

export function openInstallCursor(path: string): InstallCursor {
  let vv: VersionVector = {};
  if (existsSync(path)) {
    try {
      const parsed = JSON.parse(readFileSync(path, "utf8")) as unknown;
      if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) {
        for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) vv[k] = v;
      }
    } catch {
      // A torn or foreign file: start over, which rewrites everything (safe, only slower).
      vv = {};
    }
  }
  let dirty = false;
  return {
    get: () => vv,
    advance(origin, seq) {
      if (seq > (vv[origin] ?? 0)) {
        vv[origin] = seq;
        dirty = true;
      }
    },
    reset(next) {
      vv = { ...next };
      dirty = true;
    },
    save() {
      if (!dirty) return;
      const tmp = `${path}.tmp`;
      const fd = openSync(tmp, "w", 0o600);
      try {
        writeSync(fd, JSON.stringify(vv));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, path);
      dirty = false;
    },
  };
}
