/**
 * The ways from the agent into its Kamailio, opened from config: jsonrpcs over the FIFO (probes,
 * ul.dump) and, when configured, over the datagram socket (writes and lookups, the FIFO when that
 * fails), Kamailio's database (the writer's fallback, and what Kamailio holds in db_mode 3), and the
 * evapi bulk channels a reload may use. attachment.ts opens one and closes it last.
 */
import type { KamailioConfig } from "../config/agent-config.js";
import type { Logger } from "../ops/logger.js";
import { createCoreRpc, type CoreRpc } from "./core-rpc.js";
import { dumpFromDb } from "./db-state.js";
import { createDgramClient } from "./dgram-client.js";
import { createBulkOpener, type BulkToken } from "./bulk-tokens.js";
import { createFifoClient } from "./fifo-client.js";
import type { CallOptions, KamailioRpc, RpcParams } from "./jsonrpcs-wire.js";
import { openKamailioDb, type KamailioDb } from "./kamailio-db.js";
import { createKamailioWriter, type KamailioWriter } from "./kamailio-writer.js";
import type { BulkSession } from "./reload.js";
import type { UsrlocContact } from "./usrloc-contact.js";
import { createUsrlocRpc, type UsrlocRpc } from "./usrloc-rpc.js";

/**
 * Reload writes in flight through the bulk channels: enough to fill their chunks (each bounds the
 * bytes on the wire itself, about 80 writes a channel), and no more: each one waiting in the agent
 * is garbage its collector copies (reload.ts, PLAN_AHEAD). 128 left Kamailio waiting; 384 and 512
 * were slower than 256.
 */
const BULK_RELOAD_WINDOW = 256;
/**
 * Bulk channels opened for a reload. Two kept Kamailio busy through the agent's longer turns: a
 * scripted client that stalls 5 ms every 1,000 writes put 100,000 into Kamailio in 3.11 s over
 * one channel and 2.68 s over two (2.77 and 2.62 s without the stalls); three gave 2.67 s. With
 * batch frames on Kamailio's two async workers, four were no faster than two in the bench's reload.
 */
const BULK_CHANNELS = 2;

export interface KamailioLinks {
  /** Which instance runs, and the include's REGISTER gate (over the FIFO). */
  core: CoreRpc;
  /** ul.* writes and lookups: over the datagram socket when configured, the FIFO when that fails. */
  usrloc: UsrlocRpc;
  /** Writes an InstallOp through `usrloc`, or into the database when Kamailio does not answer. */
  writer: KamailioWriter;
  db: KamailioDb | null;
  /** The database when Kamailio loads it only at start (db_mode 1/2): what is written there waits for a restart. */
  preloadDb: KamailioDb | null;
  /** The usrloc domain of SER-style aliases; null when aliases live in dbaliases. */
  aliasTable: string | null;
  /** Every contact Kamailio holds (`maxReplyBytes` as in CallOptions). */
  dump(maxReplyBytes?: number): Promise<UsrlocContact[]>;
  /** `dump` reads Kamailio's location table (db_mode 3 with kamailio.db), not ul.dump. */
  dumpReadsDatabase: boolean;
  /** How many contacts Kamailio's location table holds; null when it cannot say. */
  countContacts(): Promise<number | null>;
  /** Opens the evapi bulk channels for one reload; undefined when they are not configured. */
  openBulk: (() => Promise<BulkSession>) | undefined;
  close(): Promise<void>;
}

export async function openKamailioLinks(deps: {
  config: KamailioConfig;
  /** The evapi bulk channel's tokens, one per cluster key (bulk-tokens.ts); null: reloads go over jsonrpcs only. */
  bulkTokens: (() => readonly BulkToken[]) | null;
  /** This node's id: marks its reply FIFOs as its own (reply-fifo-pool.ts). */
  nodeId?: string;
  log: Logger;
}): Promise<KamailioLinks> {
  const { config, log } = deps;
  const fifo = createFifoClient({
    fifoPath: config.fifo, replyDir: config.replyDir, timeoutMs: config.timeoutMs, log,
    maxInFlight: Math.min(32, config.window), replyFifoMode: config.replyFifoMode,
    ...(deps.nodeId === undefined ? {} : { replyOwner: deps.nodeId }),
  });
  let dgram: KamailioRpc | null = null;
  if (config.dgram) {
    const m = /^udp:\[?([^\]]+?)\]?:(\d+)$/.exec(config.dgram)!;
    dgram = await createDgramClient({ host: m[1]!, port: Number(m[2]), timeoutMs: config.timeoutMs, log, maxInFlight: config.window });
  }
  const writes = failover(dgram, fifo);
  const db: KamailioDb | null = config.db ? openKamailioDb({
    url: config.db.url, timeZone: config.db.timeZone, aliasMode: config.aliases,
    locationTable: config.locationTable, aliasTable: config.aliasTable,
  }, { log }) : null;
  const aliasTable = config.aliases === "usrloc" ? (config.aliasTable ?? "aliases") : null;
  // usrloc db_mode 0 reads no location table: the database is alias_db's only (kamailio-writer.ts).
  const locationsInDb = db !== null && config.db!.dbMode !== 0;
  // db_mode 1 and 2 write usrloc's contacts into the database (kamailio-writer.ts settleDatabase).
  const usrlocWritesRows = db !== null && [1, 2].includes(config.db!.dbMode);
  const usrloc = createUsrlocRpc({ rpc: writes });
  const dumper = createUsrlocRpc({ rpc: fifo, dumpTimeoutMs: Math.max(30_000, config.timeoutMs) });
  // db_mode 3 keeps no cache (ul.dump is always empty): the database is what Kamailio holds.
  const dbOnly = db !== null && config.db!.dbMode === 3;
  const evapiConfig = config.evapi;
  const openBulkChannels = evapiConfig && deps.bulkTokens !== null && config.bulkReload
    ? createBulkOpener({ tokens: deps.bulkTokens, options: { host: evapiConfig.host, port: evapiConfig.port, log, ackTimeoutMs: config.timeoutMs }, count: BULK_CHANNELS, log })
    : null;
  return {
    // Two small replies: a second and a half is plenty even on a loaded host. Over the FIFO, and
    // the datagram socket when that fails: a Kamailio whose FIFO file was removed still runs and
    // takes writes there, and is not DOWN (its reconcile, which needs the FIFO, says what fails).
    core: createCoreRpc({ rpc: dgram ? failover(fifo, dgram, "primary") : fifo, probeTimeoutMs: Math.min(config.timeoutMs, 1500) }),
    usrloc,
    writer: createKamailioWriter({ usrloc, db, aliasTable, locationsInDb, usrlocWritesRows, usrlocDbOnly: dbOnly, log }),
    db,
    // db_mode 4 (DB_READONLY) loads at start too, and never writes: like 1/2 for what it sees.
    preloadDb: db && [1, 2, 4].includes(config.db!.dbMode) ? db : null,
    aliasTable,
    dumpReadsDatabase: dbOnly,
    dump: (maxReplyBytes) => dbOnly
      ? dumpFromDb(db!, { locationTable: config.locationTable, aliasTable, nowSec: Math.floor(Date.now() / 1000) })
      : dumper.ulDump(maxReplyBytes === undefined ? undefined : { maxReplyBytes }),
    // In db_mode 3 usrloc's statistics count nothing: the journal's count stands in.
    countContacts: () => (dbOnly ? Promise.resolve(null) : dumper.ulContactCount(config.locationTable)),
    openBulk: openBulkChannels
      ? async (): Promise<BulkSession> => {
        const rpc = await openBulkChannels();
        // A write the channel could not vouch for goes the usual way (all of them are idempotent).
        const bulkWriter = createKamailioWriter({ usrloc: createUsrlocRpc({ rpc: failover(rpc, writes) }), db, aliasTable, locationsInDb, usrlocWritesRows, usrlocDbOnly: dbOnly, log });
        return { writer: bulkWriter, window: BULK_RELOAD_WINDOW, close: () => rpc.close() };
      }
      : undefined,
    async close() {
      await dgram?.close();
      await fifo.close();
      await db?.close();
    },
  };
}

/**
 * Calls go to `primary` (when there is one), and to `secondary` when it fails transiently. When
 * both fail, the error is the secondary's, or with `report` "primary" the primary's (the FIFO's
 * says best why Kamailio is down).
 */
function failover(primary: KamailioRpc | null, secondary: KamailioRpc, report: "primary" | "secondary" = "secondary"): KamailioRpc {
  if (primary === null) return secondary;
  return {
    async call<T>(method: string, params?: RpcParams, opts?: CallOptions): Promise<T> {
      try {
        return await primary.call<T>(method, params, opts);
      } catch (err) {
        if ((err as { transient?: unknown }).transient !== true) throw err;
        if (report === "secondary") return secondary.call<T>(method, params, opts);
        try {
          return await secondary.call<T>(method, params, opts);
        } catch {
          throw err;
        }
      }
    },
    close: async () => undefined,
  };
}
