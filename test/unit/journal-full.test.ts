/**
 * A full journal disk reaches API callers and peers as a temporary failure that says what
 * happened and what to do (the disk-full drill checks the same against a real full tmpfs).
 */
import { describe, expect, it } from "vitest";
import { ErrorCode } from "../../agent/contract/errors.js";
import { isTransient } from "../../agent/core/transient.js";
import { JournalFullError, journalFullOr } from "../../agent/journal/journal-full.js";
import { toRpcError } from "../../agent/rpc/server.js";

const sqliteError = (code: string) => Object.assign(new Error(code === "SQLITE_FULL" ? "database or disk is full" : "other"), { code });

describe("journal full", () => {
  it("turns SQLITE_FULL into a retryable error naming the disk and the fix", () => {
    const err = journalFullOr(sqliteError("SQLITE_FULL"), "/var/lib/locmesh/journal.sqlite");
    expect(err).toBeInstanceOf(JournalFullError);
    expect(isTransient(err)).toBe(true);
    const rpc = toRpcError(err);
    expect(rpc.code).toBe(ErrorCode.TemporaryFailure);
    expect(rpc.message).toMatch(/disk is full \(\/var\/lib\/locmesh\/journal\.sqlite\): this change was not made\. Free space on the filesystem holding \/var\/lib\/locmesh/);
  });

  it("leaves every other failure as it is", () => {
    const busy = sqliteError("SQLITE_BUSY");
    expect(journalFullOr(busy, "/x/journal.sqlite")).toBe(busy);
    expect(journalFullOr("text", "/x/journal.sqlite")).toBe("text");
  });
});
