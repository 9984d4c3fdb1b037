/**
 * The little the Kamailio database fallback needs from a SQL database, so one set of statements
 * (kamailio-db.ts) runs on both better-sqlite3 and pg. Statements use `?` placeholders; the pg
 * driver numbers them.
 */

export type Row = Record<string, unknown>;

/** Runs one statement; returns its rows ([] for a write without RETURNING). */
export type Query = (sql: string, params?: readonly unknown[]) => Promise<Row[]>;

/** How a driver error should be reported. */
export type FailureKind = "unavailable" | "missing-object" | "other";

export interface SqlDriver {
  readonly dialect: "sqlite" | "postgres";
  query: Query;
  /** Runs fn in one transaction (a write lock from the start on SQLite), committing when it resolves. */
  transaction<T>(fn: (q: Query) => Promise<T>): Promise<T>;
  /** Serialises our own writers of one key inside a transaction (Kamailio does not take these locks). */
  lockKey(q: Query, key: string): Promise<void>;
  /** Unix seconds → the value Kamailio keeps in a DATETIME column, and back. */
  encodeTime(sec: number): number | string;
  decodeTime(value: unknown): number;
  classify(err: unknown): FailureKind;
  close(): Promise<void>;
}

/** A promise chain that runs tasks one at a time (one SQLite connection, one transaction at a time). */
export function createSerialQueue(): <T>(task: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(task: () => Promise<T>): Promise<T> => {
    const run = tail.then(task, task);
    tail = run.catch(() => undefined);
    return run;
  };
}
