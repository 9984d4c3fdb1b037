/**
 * The journal's meta table: whose journal it is (node_id: another node's is refused), its epoch
 * (replica_id, new for every journal that starts empty), whether it has caught up with the cluster
 * once (unseeded), and the notes other parts of the agent keep with the journal. The store keeps
 * its own values there too (max_hlc) through get and set.
 */
import { randomBytes } from "node:crypto";
import type Database from "better-sqlite3";
import { journalFullOr } from "./journal-full.js";

export class JournalOwnerError extends Error {
  override readonly name = "JournalOwnerError";
}

/**
 * Small values other parts of the agent keep with the journal (its meta table), durable when
 * writeNote returns; null writes remove. Names are the caller's: NOTE_PREFIX keeps them apart
 * from the journal's own (node_id, replica_id, max_hlc, ...).
 */
export interface JournalNotes {
  readNote(name: string): string | null;
  writeNote(name: string, value: string | null): void;
}

export interface JournalMeta extends JournalNotes {
  /** This journal's epoch: the node id, `~`, and random hex. */
  readonly replicaId: string;
  /** This open made the journal (it had no epoch yet): a new node, or dataDir points elsewhere. */
  readonly created: boolean;
  /**
   * False for a journal this node started empty (a new node, a lost disk, a journal moved aside)
   * until markSeeded: it does not yet know what the cluster holds, so nothing may be concluded
   * from what it lacks (journal-seed in agent.ts). A journal from before this flag counts as seeded.
   */
  seeded(): boolean;
  markSeeded(): void;
  /** The journal's own values (not notes), e.g. max_hlc. */
  get(name: string): string | undefined;
  set(name: string, value: string): void;
}

/** The journal at `path` is `owner`'s, and node `nodeId` would open it. */
export function journalOwnerError(path: string, owner: string, nodeId: string): JournalOwnerError {
  return new JournalOwnerError(
    `the journal at ${path} belongs to node "${owner}", not "${nodeId}"; ` +
      "point dataDir at this node's own journal, or move it aside to start empty",
  );
}

/** Notes live in the meta table under this prefix. */
const NOTE_PREFIX = "note:";

/**
 * Reads (or, for an empty journal, writes) whose journal `db` is. A journal of another node closes
 * `db` and throws JournalOwnerError. `path` is for messages.
 */
export function openJournalMeta(db: Database.Database, opts: { path: string; nodeId: string }): JournalMeta {
  const metaGet = db.prepare<[string], { value: string }>("SELECT value FROM meta WHERE name = ?");
  const metaSet = db.prepare<[string, string]>(
    "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
  );

  const owner = metaGet.get("node_id")?.value;
  if (owner !== undefined && owner !== opts.nodeId) {
    db.close();
    throw journalOwnerError(opts.path, owner, opts.nodeId);
  }
  let replicaId = metaGet.get("replica_id")?.value;
  const created = replicaId === undefined;
  if (replicaId === undefined) {
    // A new epoch per empty journal: a node that lost its disk must not reuse sequence numbers
    // that its peers have already seen under the old epoch.
    replicaId = `${opts.nodeId}~${randomBytes(6).toString("hex")}`;
    db.transaction(() => {
      metaSet.run("node_id", opts.nodeId);
      metaSet.run("replica_id", replicaId!);
      metaSet.run("created_at", new Date().toISOString());
      metaSet.run("unseeded", "1");
    })();
  }

  let seeded = metaGet.get("unseeded") === undefined;
  const metaDelete = db.prepare<[string]>("DELETE FROM meta WHERE name = ?");

  return {
    replicaId,
    created,
    seeded: () => seeded,
    readNote: (name) => metaGet.get(NOTE_PREFIX + name)?.value ?? null,
    writeNote(name, value) {
      try {
        if (value === null) metaDelete.run(NOTE_PREFIX + name);
        else metaSet.run(NOTE_PREFIX + name, value);
      } catch (err) {
        throw journalFullOr(err, opts.path);
      }
    },
    markSeeded() {
      if (seeded) return;
      // Seeded for this run even if the row cannot be deleted (a full disk): after a restart the
      // journal would only wait for another catch-up.
      seeded = true;
      metaDelete.run("unseeded");
    },
    get: (name) => metaGet.get(name)?.value,
    set: (name, value) => {
      metaSet.run(name, value);
    },
  };
}
