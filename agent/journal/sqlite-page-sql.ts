/**
 * The journal's list pages (location.list, alias.list) in SQL, one statement per record kind, apart
 * from the store so that a test can check their query plans (test/unit/sqlite-store.test.ts).
 * What a search matches is core/list-search.ts; the parameters are @now, @all (1 for an empty
 * search), @name, @text, the cursor @ak/@as and @n.
 */
import type { RecordKind } from "../contract/records.js";
import { KIND_CODE } from "../core/stored-row.js";

const LIVE = "value IS NOT NULL AND (expires IS NULL OR expires = 0 OR expires > @now)";
// Names are stored lower-cased already (list-search.ts): compared as they are, no lower() per row.
const NAME = "(@name <> '' AND instr(key, @name) > 0)";
const MATCH: Record<RecordKind, string> = {
  loc: `(@all OR ${NAME} OR instr(lower(sub), @text) > 0)`,
  // An alias's sub is always ''; its target is inside the JSON value.
  alias: `(@all OR ${NAME} OR instr(lower(json_extract(value, '$.target')), @text) > 0)`,
};
// A row value, so that SQLite seeks the identity index to the cursor: written as `key > @ak OR
// (key = @ak AND ...)` it walked the index from the start on every page (100,000 records in pages
// of 200: 1.9 s). The first page's cursor ('', '') is below every record: keys are never empty.
const AFTER = "(key, sub) > (@ak, @as)";

const where = (kind: RecordKind) => `kind = ${KIND_CODE[kind]} AND ${LIVE} AND ${MATCH[kind]}`;

export const PAGE_SQL: Record<RecordKind, string> = {
  loc: pageSql("loc"),
  alias: pageSql("alias"),
};

export const COUNT_SQL: Record<RecordKind, string> = {
  loc: `SELECT count(*) AS n FROM records WHERE ${where("loc")}`,
  alias: `SELECT count(*) AS n FROM records WHERE ${where("alias")}`,
};

function pageSql(kind: RecordKind): string {
  return `SELECT kind, key, sub, hlc, origin, seq, value FROM records
    WHERE ${where(kind)} AND ${AFTER} ORDER BY key, sub LIMIT @n`;
}

export interface PageParams {
  now: number;
  all: 0 | 1;
  name: string;
  text: string;
  ak: string;
  as: string;
  n: number;
}
export type CountParams = Pick<PageParams, "now" | "all" | "name" | "text">;
