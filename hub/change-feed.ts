/**
 * How a hub learns what other hubs committed: one dedicated connection LISTENs on the channel that
 * every store transaction NOTIFYs with "origin have" (PostgreSQL delivers it at COMMIT). Each
 * notification raises the store's cached version vector and wakes the push pumps, which then read
 * the changes from the database. Notifications sent while this connection was down are lost, so
 * after every (re)connect, and every `reloadMs` as a safety net, the whole vector is re-read; a
 * database that now holds less than was seen (it lost commits) is told to `onLoss`.
 * A LISTEN connection only receives, so a silent network would leave it waiting for ever: every
 * `reloadMs` it is also asked a `SELECT 1`, and one that gets no answer within the query timeout
 * is dropped and made again.
 */
import pg from "pg";
import type { Logger } from "../agent/ops/logger.js";
import type { PgStore, VectorLoss } from "./pg-store.js";
import { createRetryPacing } from "./retry-pacing.js";

export interface ChangeFeedDeps {
  /** The connection string with the hub's timeouts and keepalive (pg-connection.ts). */
  connection: pg.ClientConfig;
  store: PgStore;
  log: Logger;
  /** Something new may be in the database. */
  onChange(): void;
  /** The database holds fewer changes of these origins than this hub had seen (pg-store.ts reloadVector). */
  onLoss?(lost: VectorLoss[]): void;
  /** The first retry's wait; it doubles up to `retryMaxMs` while PostgreSQL refuses (retry-pacing.ts). */
  retryMs?: number;
  retryMaxMs?: number;
  reloadMs?: number;
}

export interface ChangeFeed {
  /** Resolves once the first LISTEN is in place. */
  ready: Promise<void>;
  close(): Promise<void>;
}

export function startChangeFeed(deps: ChangeFeedDeps): ChangeFeed {
  const log = deps.log.child({ component: "change-feed" });
  const { store } = deps;
  let client: pg.Client | null = null;
  let closed = false;
  let markReady: () => void = () => undefined;
  const pacing = createRetryPacing({ minMs: deps.retryMs ?? 500, maxMs: deps.retryMaxMs ?? 5000 });
  const ready = new Promise<void>((r) => (markReady = r));

  const reload = async () => {
    const lost = await store.reloadVector();
    if (lost.length > 0) deps.onLoss?.(lost);
    deps.onChange();
  };
  // One of each at a time: against a PostgreSQL that does not answer, each waits out its timeout.
  let reloading = false;
  let pinging = false;
  const safety = setInterval(() => {
    if (!reloading) {
      reloading = true;
      void reload().catch(() => undefined).finally(() => (reloading = false));
    }
    const c = client;
    if (c && !pinging) {
      pinging = true;
      c.query("SELECT 1")
        .catch((err: unknown) => {
          if (client !== c || closed) return;
          log.warn({ err: (err as Error).message }, "the LISTEN connection does not answer; making it again");
          // With the ping still unanswered, pg destroys the socket rather than wait for a goodbye.
          void c.end().catch(() => undefined);
        })
        .finally(() => (pinging = false));
    }
  }, deps.reloadMs ?? 5000);
  safety.unref();

  // One loop at a time: a connection that ends while it is being set up is this loop's to retry;
  // only one that was set up whole schedules a new loop when it ends.
  async function connect(): Promise<void> {
    while (!closed) {
      const c = new pg.Client(deps.connection);
      let live = false;
      let endedEarly = false;
      c.on("error", (err) => log.warn({ err: err.message }, "change feed connection failed"));
      c.once("end", () => {
        if (!live) {
          endedEarly = true;
          return;
        }
        if (client === c) client = null;
        if (!closed) {
          log.warn("change feed connection lost; reconnecting");
          setTimeout(() => void connect(), deps.retryMs ?? 500);
        }
      });
      try {
        await c.connect();
        c.on("notification", (n) => {
          const [origin, have] = (n.payload ?? "").split(" ");
          if (origin && have) store.noteHave(origin, Number(have));
          deps.onChange();
        });
        await c.query(`LISTEN ${store.channel}`);
        // Notifications from here on are heard; what was committed before is in the reload.
        await reload();
        if (endedEarly) throw new Error("the LISTEN connection ended while it was being set up");
        if (closed) {
          await c.end().catch(() => undefined);
          return;
        }
        live = true;
        client = c;
        const failedBefore = pacing.succeeded();
        log.info({ channel: store.channel, ...(failedBefore > 0 ? { failedAttempts: failedBefore } : {}) }, "listening for changes committed by any hub");
        markReady();
        return;
      } catch (err) {
        await c.end().catch(() => undefined);
        if (closed) return;
        const { delayMs, log: say } = pacing.failed();
        if (say) {
          const message = say.first ? "cannot LISTEN for changes yet; retrying with back-off (logged again at most once a minute)" : `still cannot LISTEN for changes: ${say.attempts} more attempts failed; retrying`;
          log.warn({ err: (err as Error).message, attempts: say.attempts, retryInMs: delayMs }, message);
        }
        await new Promise((r) => setTimeout(r, delayMs));
      }
    }
  }
  void connect();

  return {
    ready,
    async close() {
      closed = true;
      clearInterval(safety);
      await client?.end().catch(() => undefined);
    },
  };
}
