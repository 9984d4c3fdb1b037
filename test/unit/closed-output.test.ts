/** A CLI whose reader went away (`locmesh ... | head`) ends as POSIX tools do: quietly, status 141. */
import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { EXIT_OUTPUT_CLOSED, endQuietlyWhenOutputCloses } from "../../agent/cli/closed-output.js";

const failure = (code: string) => Object.assign(new Error(`write ${code}`), { code, syscall: "write" });

describe("endQuietlyWhenOutputCloses", () => {
  it("exits with 141 when a write fails with EPIPE, on any of the streams", () => {
    const [stdout, stderr] = [new PassThrough(), new PassThrough()];
    const exits: number[] = [];
    endQuietlyWhenOutputCloses([stdout, stderr], (code) => exits.push(code));
    stdout.emit("error", failure("EPIPE"));
    stderr.emit("error", failure("EPIPE"));
    expect(exits).toEqual([EXIT_OUTPUT_CLOSED, EXIT_OUTPUT_CLOSED]);
    expect(EXIT_OUTPUT_CLOSED).toBe(128 + 13);
  });

  it("leaves any other write error to fail loudly", () => {
    const stdout = new PassThrough();
    const exits: number[] = [];
    endQuietlyWhenOutputCloses([stdout], (code) => exits.push(code));
    expect(() => stdout.emit("error", failure("ENOSPC"))).toThrow("write ENOSPC");
    expect(exits).toEqual([]);
  });
});
