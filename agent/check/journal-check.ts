/**
 * `locmesh check`'s look at the journal: whether an agent runs on it now, and whether the agent
 * could open it (this node's, not from a newer locmesh, its folder writable). Reads only
 * (journal/journal-inspect.ts): nothing is migrated, locked for longer than a look, or made.
 */
import { accessSync, constants, existsSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { journalInUse } from "../journal/journal-lock.js";
import { inspectJournal, journalPathOf } from "../journal/journal-inspect.js";
import { sentences, type CheckResult } from "./check-result.js";

export interface JournalCheck {
  result: CheckResult;
  /** An agent holds the journal now; null when that could not be told (the lock file not readable). */
  agentRunning: boolean | null;
}

export function checkJournal(o: { dataDir: string; nodeId: string }): JournalCheck {
  const path = journalPathOf(o.dataDir);
  const subject = "journal";
  if (!existsSync(path)) {
    const blocked = notWritable(o.dataDir);
    if (blocked !== null) {
      return {
        agentRunning: false,
        result: { subject, state: "fail", detail: `the agent cannot make its journal at ${path}: ${blocked} is not writable for this user. Run the agent as the user that owns dataDir (${o.dataDir}), or set dataDir to a folder that user may write` },
      };
    }
    return {
      agentRunning: false,
      result: { subject, state: "ok", detail: `none yet at ${path}: the agent makes it at its start (a new node; a node that had one before starts a new epoch and gets a full copy from its peers)` },
    };
  }
  let running: boolean;
  try {
    running = journalInUse(path);
  } catch (err) {
    return { agentRunning: null, result: { subject, state: "fail", detail: sentences(`cannot tell whether an agent holds the journal at ${path}: ${(err as Error).message}`, "Run this check as the agent's user (or root)") } };
  }
  // SQLite makes a WAL journal's -wal and -shm beside it even for a reader, as this user. Beside a
  // stopped agent, made by anyone but root (who gives them to the journal's owner) or that owner,
  // they would keep the agent from writing its journal: it is then not read.
  const uid = process.getuid?.();
  const owner = statSync(path).uid;
  if (uid !== undefined && uid !== 0 && uid !== owner && !(existsSync(`${path}-wal`) && existsSync(`${path}-shm`))) {
    return {
      agentRunning: running,
      result: { subject, state: "warn", detail: `${path} is not read: this user (uid ${uid}) is neither root nor its owner (uid ${owner}), and reading it would leave files beside it the agent could not write. Run this check as the agent's user (or root)` },
    };
  }
  let facts;
  try {
    facts = inspectJournal(path, o.nodeId);
  } catch (err) {
    return { agentRunning: running, result: { subject, state: "fail", detail: sentences(`cannot read the journal at ${path}: ${(err as Error).message}`, "Run this check as the agent's user (or root)") } };
  }
  if (facts.refusal !== null) return { agentRunning: running, result: { subject, state: "fail", detail: facts.refusal.message } };
  const epoch = facts.replicaId === null ? "no epoch yet" : `epoch ${facts.replicaId}${facts.createdAt ? `, made ${facts.createdAt}` : ""}`;
  const upgrade = facts.schema < facts.latestSchema ? `; schema version ${facts.schema}, migrated to ${facts.latestSchema} at the next start` : "";
  const seeded = facts.seeded ? "" : "; it started empty and has not caught up with the cluster yet";
  const holder = running ? "in use by the running agent" : "no agent runs on it";
  const blocked = running ? null : notWritable(dirname(path));
  if (blocked !== null) {
    return { agentRunning: running, result: { subject, state: "fail", detail: `${path} (${epoch}): the agent cannot write beside it, ${blocked} is not writable for this user. Run the agent as the user that owns dataDir` } };
  }
  return { agentRunning: running, result: { subject, state: "ok", detail: `${path}: node ${o.nodeId}'s, ${epoch}; ${holder}${upgrade}${seeded}` } };
}

/**
 * Why this user could not make files in `dir` (making it first if it is missing): the first folder
 * on the way that exists and is not writable, or null when nothing is in the way.
 */
function notWritable(dir: string): string | null {
  let at = dir;
  while (!existsSync(at) && dirname(at) !== at) at = dirname(at);
  try {
    accessSync(at, constants.W_OK | constants.X_OK);
    return null;
  } catch {
    return at;
  }
}
