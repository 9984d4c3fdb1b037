/**
 * What a hub's `cluster.status` says of its PostgreSQL (PostgresStatus, filled in by
 * hub/postgres-status.ts), decided once for both places that show it: `locmesh status`
 * (agent/cli/client-output.ts) and the web UI's Cluster page (web/src/lib/cluster-view.ts), so
 * that they cannot drift apart. Pure, and free of Node: the web build imports it. Durations are
 * written by the caller, as each surface writes them ("1m32s" in the terminal, "1m 32s" on the page).
 */
import type { PostgresStatus } from "./cluster-status.js";

/** Seconds as text. */
export type DurationText = (seconds: number) => string;

/** Why a hub's counts are stale, or none are counted, while its PostgreSQL fails. */
export const PG_NO_ANSWER = "PostgreSQL does not answer";

/** Where a hub's agents go while its PostgreSQL does not answer (README "Running a hub"). */
export const AGENTS_GO_ELSEWHERE = "go to another hub whose PostgreSQL answers, if any";

/**
 * Answering; failing: checks fail or go unanswered, not yet for `releaseAfterSeconds` (the hub
 * still holds its agents); unreachable: the hub has released its agents and refuses them.
 * `lastAnsweredAgeSeconds` and `releaseAfterSeconds` are null from hubs older than them.
 */
export type PostgresStanding =
  | { state: "answering"; lastAnsweredAgeSeconds: number | null }
  | { state: "failing"; failingForSeconds: number; lastAnsweredAgeSeconds: number | null; error: string; releaseAfterSeconds: number | null }
  | { state: "unreachable"; since: string; lastAnsweredAgeSeconds: number | null; error: string };

export function postgresStanding(p: PostgresStatus): PostgresStanding {
  const lastAnsweredAgeSeconds = p.lastAnsweredAgeSeconds ?? null;
  const error = p.error ?? "no answer";
  if (!p.reachable) return { state: "unreachable", since: p.since, lastAnsweredAgeSeconds, error };
  const failingForSeconds = p.failingForSeconds ?? null;
  if (failingForSeconds === null) return { state: "answering", lastAnsweredAgeSeconds };
  return { state: "failing", failingForSeconds, lastAnsweredAgeSeconds, error, releaseAfterSeconds: p.releaseAfterSeconds ?? null };
}

/** " (last answered 9s ago)", or "" from a hub that does not say. */
export function lastAnsweredText(s: PostgresStanding, dur: DurationText): string {
  return s.lastAnsweredAgeSeconds === null ? "" : ` (last answered ${dur(s.lastAnsweredAgeSeconds)} ago)`;
}

/** "agents are released after 15s", or null from a hub that does not say. */
export function releaseText(s: PostgresStanding & { state: "failing" }, dur: DurationText): string | null {
  return s.releaseAfterSeconds === null ? null : `agents are released after ${dur(s.releaseAfterSeconds)}`;
}

/**
 * A hub's record counts (they come from PostgreSQL): none counted yet, or counted a while ago and
 * stale or not. Hubs older than `countsStale` report them stale exactly while PostgreSQL is unreachable.
 */
export type CountsStanding = { counted: false; text: string } | { counted: true; stale: string | null; text: string };

export function countsStanding(pg: PostgresStatus, dur: DurationText): CountsStanding {
  if (pg.countsAgeSeconds === null) return { counted: false, text: `not counted yet${pg.reachable ? ": counting takes a while" : `; ${PG_NO_ANSWER}`}` };
  const age = `counted ${dur(pg.countsAgeSeconds)} ago`;
  const stale = pg.countsStale !== undefined ? pg.countsStale : pg.reachable ? null : PG_NO_ANSWER;
  return { counted: true, stale, text: stale === null ? age : `STALE: ${age}; ${stale}` };
}
