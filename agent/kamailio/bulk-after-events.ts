/**
 * Bulk channels open only while the agent's event connection is open.
 *
 * The include cannot tell a bulk channel from the event connection until the channel says its
 * hello (cfg-include-evapi.ts): from its connect until then it counts as an event connection, so
 * the drain sends it registrar events, which a bulk channel drops. With the event connection open
 * too, those events reach the agent all the same (evapi sends every event to every client); with
 * it closed (evapi's reconnect still in its back-off, or a reload that started first) they were
 * lost, and only a reconcile below `kamailio.reconcileMaxContacts` brought them back. So a reload
 * waits a little for the event connection, and without it writes over jsonrpcs instead.
 */
import type { BulkSession } from "./reload.js";
import { EvapiBulkUnavailableError } from "./evapi-bulk.js";

/** How long a reload waits for the event connection before it goes over jsonrpcs (evapi's reconnect is retried every 50 ms after a drop). */
export const BULK_EVENTS_WAIT_MS = 3000;
const POLL_MS = 50;

export function bulkAfterEvents(
  openBulk: () => Promise<BulkSession>,
  eventsOpen: () => boolean,
  o: { waitMs?: number; pollMs?: number } = {},
): () => Promise<BulkSession> {
  const waitMs = o.waitMs ?? BULK_EVENTS_WAIT_MS;
  const pollMs = o.pollMs ?? POLL_MS;
  return async () => {
    const until = Date.now() + waitMs;
    while (!eventsOpen() && Date.now() < until) await new Promise((r) => setTimeout(r, pollMs));
    if (!eventsOpen()) {
      throw new EvapiBulkUnavailableError(
        `the agent's evapi event connection has not been open for ${waitMs} ms: a bulk channel opened now would take the registrar events Kamailio sends before its hello, and drop them`,
      );
    }
    return openBulk();
  };
}
