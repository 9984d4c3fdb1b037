/**
 * A reload's bulk channels open only while the agent's evapi event connection is open
 * (agent/kamailio/bulk-after-events.ts): until a channel's hello the include sends it registrar
 * events, which it drops, and only an open event connection receives them as well.
 */
import { describe, expect, it } from "vitest";
import { bulkAfterEvents } from "../../agent/kamailio/bulk-after-events.js";
import { EvapiBulkUnavailableError } from "../../agent/kamailio/evapi-bulk.js";
import type { BulkSession } from "../../agent/kamailio/reload.js";

const session = { window: 1 } as unknown as BulkSession;

describe("bulk channels after the event connection", () => {
  it("opens at once while the event connection is open", async () => {
    let opened = 0;
    const open = bulkAfterEvents(async () => (opened++, session), () => true, { waitMs: 1000, pollMs: 5 });
    expect(await open()).toBe(session);
    expect(opened).toBe(1);
  });

  it("waits for the event connection, and opens only once it is open", async () => {
    let eventsOpen = false;
    const openedWhile: boolean[] = [];
    const open = bulkAfterEvents(async () => (openedWhile.push(eventsOpen), session), () => eventsOpen, { waitMs: 2000, pollMs: 5 });
    const pending = open();
    await new Promise((r) => setTimeout(r, 40));
    expect(openedWhile).toEqual([]);
    eventsOpen = true;
    expect(await pending).toBe(session);
    expect(openedWhile).toEqual([true]);
  });

  it("without the event connection, refuses with a transient error (the reload then goes over jsonrpcs) and opens nothing", async () => {
    let opened = 0;
    const open = bulkAfterEvents(async () => (opened++, session), () => false, { waitMs: 30, pollMs: 5 });
    const err = await open().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EvapiBulkUnavailableError);
    expect((err as EvapiBulkUnavailableError).transient).toBe(true);
    expect((err as Error).message).toMatch(/event connection has not been open for 30 ms/);
    expect(opened).toBe(0);
  });
});
