/**
 * The request side of the jsonrpcs FIFO (agent/kamailio/fifo-writer.ts) when something other than
 * Kamailio's FIFO is at its path: a transient error that says so, and nothing written there. Before,
 * a regular file in its place took every request (the hostile-input dry run's F11).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createFifoWriter } from "../../agent/kamailio/fifo-writer.js";
import { makeTempDirs } from "../support/fixtures.js";

const temp = makeTempDirs("locmesh-fifo-");
afterEach(() => temp.cleanup());

describe("the FIFO request writer", () => {
  it("refuses a regular file in the FIFO's place, transiently, and writes nothing into it", async () => {
    const path = join(temp.make(), "kamailio_rpc.fifo");
    writeFileSync(path, "");
    const err = await createFifoWriter({ fifoPath: path }).write(Buffer.from('{"jsonrpc":"2.0","method":"core.uptime","id":1}\n'), Date.now() + 1000).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/is not a FIFO \(a regular file or something else is there\): check jsonrpcs' fifo_name/);
    expect((err as { transient?: boolean }).transient).toBe(true);
    expect(readFileSync(path, "utf8")).toBe("");
  });

  it("says when the FIFO does not exist", async () => {
    await expect(createFifoWriter({ fifoPath: join(temp.make(), "none.fifo") }).write(Buffer.from("x"), Date.now() + 1000)).rejects.toThrow(/does not exist/);
  });
});
