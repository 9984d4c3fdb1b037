/**
 * The agent's local JSON-RPC API: what registrar integrations, scripts, the CLI and the web UI
 * call. Method names and shapes are in contract/api-protocol.ts (cluster.status: cluster-status.ts).
 */
import { PROTOCOL_VERSION } from "../contract/protocol.js";
import { API_PARAMS, ApiMethod, type listParams, type publishParams, type ListResult, type PublishResult } from "../contract/api-protocol.js";
import { JOURNAL_BEHIND_REMEDY, journalBehindFinding, type JournalBehindInfo, type ClusterStatus, type PostgresStatus, type CredentialsStatus } from "../contract/cluster-status.js";
import type { KamailioAliasResult, KamailioContact, KamailioListResult, KamailioLookupResult, KamailioStatus } from "../contract/kamailio-status.js";
import { ErrorCode, RpcError } from "../contract/errors.js";
import { isLive, toAlias, toLocation, type Alias, type BindingValue, type Change, type Location } from "../contract/records.js";
import type { JournalBehind } from "../core/journal-behind.js";
import type { Replica } from "../core/replica.js";
import type { Draft } from "../core/store.js";
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import type { Mesh } from "../mesh/mesh.js";
import { aliasAgreement, type KamailioAliasView } from "../kamailio/kamailio-alias.js";
import { createRpcServer, type RpcServer } from "../rpc/server.js";
import { aliasNotes } from "./alias-notes.js";
import { aliasTargetIn, removeAlias, setAlias } from "./alias-preconditions.js";
import { z } from "zod";

export interface ApiContext {
  /** False on a WebSocket until auth.login succeeds. */
  authenticated: boolean;
  /**
   * auth.login's token check (api-auth.ts): null when the token is right (a WebSocket is signed in
   * then), else the error to answer: the address is held off for too many wrong tokens, or it is wrong.
   */
  signIn(token: string): RpcError | null;
  /** Present on WebSocket connections: start sending change notifications, every change or a summary. */
  subscribe?: (mode: "changes" | "summary") => void;
}

export interface LocalApiDeps {
  replica: Replica;
  mesh: Mesh;
  log: Logger;
  metrics: Metrics;
  nowMs?: () => number;
  startedAtMs: number;
  /** The locmesh release, shown in cluster.status. */
  version: string;
  /** The local Kamailio side, when the agent is attached to one. */
  kamailio?: KamailioControl | null;
  /** Pending Kamailio writes when there is no attachment to ask (a hub reports its agents' sum). */
  pendingWrites?: () => number;
  /** Set on a hub: it relays other nodes' changes and makes none, so writes are refused with this reason. */
  readOnly?: string;
  /** Set once this node's journal is found behind its peers: writes are refused from then on (agent.ts). */
  journalBehind?: Pick<JournalBehind, "info">;
  /** An agent: false while its journal, made empty, has not yet caught up with a peer or hub (agent.ts). */
  journalSeeded?: () => boolean;
  /** Set on a hub: its counts and PostgreSQL's state, answered while PostgreSQL does not (hub/postgres-status.ts). */
  postgresStatus?: (nowSec: number) => Promise<{ counts: ClusterStatus["counts"]; postgres: PostgresStatus }>;
  /** The cluster keys and API tokens, by id, with when each accepted one was last used (ops/key-ring.ts). */
  credentials?: () => CredentialsStatus;
}

export interface KamailioControl {
  status(): Promise<KamailioStatus>;
  reload(reason: string): Promise<unknown>;
  lookup(aor: string): Promise<KamailioContact[]>;
  alias(alias: string): Promise<KamailioAliasView>;
  pendingWrites(): number;
  list(p: z.output<typeof listParams>): Promise<KamailioListResult>;
  /** These bindings of this node changed here, each with its edit's stamp: bring Kamailio in line for them now (attachment.ts). */
  applyApiEdits(edits: readonly { aor: string; contact: string; hlc: number }[]): Promise<string | null>;
}

type PublishInput = z.output<typeof publishParams>;

export function createLocalApi(deps: LocalApiDeps): RpcServer<ApiContext> {
  const { replica, mesh, metrics } = deps;
  const nowMs = deps.nowMs ?? Date.now;
  const nowSec = () => Math.floor(nowMs() / 1000);
  metrics.buildInfo.set({ version: deps.version, protocol: String(PROTOCOL_VERSION) }, 1);
  const rpc = createRpcServer<ApiContext>({
    log: deps.log.child({ component: "api" }),
    onError: (code) => metrics.rpcErrors.inc({ surface: "api", code: String(code) }),
  });
  rpc.server.applyMiddleware(async (next, request, ctx) => {
    if (!ctx.authenticated && request.method !== ApiMethod.AuthLogin) {
      metrics.authFailures.inc({ reason: "api not signed in" });
      throw new RpcError(ErrorCode.Unauthorized, "sign in first: call auth.login with the agent's api token");
    }
    return next(request, ctx);
  });

  const writes = new Set<string>([ApiMethod.LocationPublish, ApiMethod.AliasSet, ApiMethod.AliasRemove]);
  /**
   * Refused while the journal is behind, besides the writes: a resync (no peer takes a session
   * then) and a Kamailio reload (it would write the stale journal into Kamailio).
   */
  const refusedWhileBehind = new Set<string>([...writes, ApiMethod.ClusterResync, ApiMethod.KamailioReload]);
  rpc.server.applyMiddleware(async (next, request, ctx) => {
    if (deps.readOnly && writes.has(request.method)) throw new RpcError(ErrorCode.InvalidRequest, deps.readOnly);
    const behind = deps.journalBehind?.info() ?? null;
    if (behind && refusedWhileBehind.has(request.method)) throw journalBehindError(behind);
    return next(request, ctx);
  });

  rpc.method(ApiMethod.AuthLogin, API_PARAMS[ApiMethod.AuthLogin], (p, ctx) => {
    const refused = ctx.signIn(p.token);
    if (refused) throw refused;
    return { ok: true };
  });

  rpc.method(ApiMethod.ChangesSubscribe, API_PARAMS[ApiMethod.ChangesSubscribe], (p, ctx) => {
    if (!ctx.subscribe) throw new RpcError(ErrorCode.InvalidRequest, "changes.subscribe needs the WebSocket API (ws://…/rpc)");
    ctx.subscribe(p.summary ? "summary" : "changes");
    return { subscribed: true };
  });

  rpc.method(ApiMethod.LocationPublish, API_PARAMS[ApiMethod.LocationPublish], async (p): Promise<PublishResult> => {
    const drafts = await toDrafts(p, replica, nowSec());
    const results = await replica.commit(drafts);
    const accepted = results.filter((r) => r !== null).length;
    metrics.changesCommitted.inc(accepted);
    if (!deps.kamailio || accepted === 0) return { accepted };
    // The sink writes no change of this node's own bindings into its Kamailio (they come from its
    // registrar): these go in now, or the notes say when they will.
    const edited = results.filter((c): c is NonNullable<typeof c> => c !== null);
    const notes = await applyInKamailio(deps.kamailio, edited, deps.log);
    return notes.length > 0 ? { accepted, notes } : { accepted };
  });

  const aliasTarget = (alias: string) => aliasTargetIn(replica.store, alias);

  rpc.method(ApiMethod.LocationLookup, API_PARAMS[ApiMethod.LocationLookup], async (p) => {
    const now = nowSec();
    const bindings = (await replica.store.listKey("loc", p.aor)).filter((c) => isLive(c, now)).map(toLocation);
    return { aor: p.aor, bindings, nowSec: now };
  });

  rpc.method(ApiMethod.LocationList, API_PARAMS[ApiMethod.LocationList], async (p): Promise<ListResult<Location>> => {
    const now = nowSec();
    const page = await replica.store.page("loc", { ...p, nowSec: now });
    return { items: page.items.map(toLocation), next: page.next, total: page.total!, nowSec: now };
  });

  rpc.method(ApiMethod.AliasSet, API_PARAMS[ApiMethod.AliasSet], async (p) => {
    const { previous } = await setAlias(replica, p);
    metrics.changesCommitted.inc();
    // The alias is set: a failure to work out the notes must not make it look refused.
    const notes = await aliasNotes(p.alias, p.target, aliasTarget).catch((err: unknown) => {
      deps.log.warn({ err: (err as Error).message, alias: p.alias }, "could not work out the notes on an alias just set");
      return [];
    });
    return { alias: p.alias, target: p.target, previous, ...(notes.length > 0 ? { notes } : {}) };
  });

  rpc.method(ApiMethod.AliasRemove, API_PARAMS[ApiMethod.AliasRemove], async (p) => {
    if (!(await removeAlias(replica, p))) throw new RpcError(ErrorCode.NotFound, `no alias ${p.alias}`);
    metrics.changesCommitted.inc();
    return { removed: p.alias };
  });

  rpc.method(ApiMethod.AliasList, API_PARAMS[ApiMethod.AliasList], async (p): Promise<ListResult<Alias>> => {
    const now = nowSec();
    const page = await replica.store.page("alias", { ...p, nowSec: now });
    return { items: page.items.map(toAlias), next: page.next, total: page.total!, nowSec: now };
  });

  rpc.method(ApiMethod.AliasLookup, API_PARAMS[ApiMethod.AliasLookup], async (p) => ({ alias: p.alias, target: await aliasTarget(p.alias) }));

  rpc.method(ApiMethod.ClusterStatus, API_PARAMS[ApiMethod.ClusterStatus], async (): Promise<ClusterStatus> => {
    const hub = deps.postgresStatus ? await deps.postgresStatus(nowSec()) : null;
    const counts = hub?.counts ?? (await replica.store.counts(nowSec()));
    const kamailio = deps.kamailio ? await deps.kamailio.status() : null;
    const hubUnacknowledged = await mesh.hubUnacknowledged();
    return {
      nodeId: replica.nodeId,
      replicaId: replica.replicaId,
      version: deps.version,
      protocol: PROTOCOL_VERSION,
      uptimeSeconds: Math.round((nowMs() - deps.startedAtMs) / 1000),
      vv: await replica.versionVector(),
      counts,
      peers: await mesh.status(),
      pendingWrites: kamailio?.pendingWrites ?? deps.pendingWrites?.() ?? 0,
      resync: mesh.resyncStatus(),
      kamailio,
      journalBehind: deps.journalBehind?.info() ?? null,
      ...(deps.journalSeeded ? { journalSeeded: deps.journalSeeded() } : {}),
      batchesRefused: mesh.batchRefusals(),
      ...(hub ? { postgres: hub.postgres } : {}),
      ...(hubUnacknowledged === undefined ? {} : { hubUnacknowledged }),
      ...(deps.credentials ? { credentials: deps.credentials() } : {}),
    };
  });

  /** The Kamailio side, for the methods that need one. */
  const attached = (): KamailioControl => {
    if (!deps.kamailio) throw new RpcError(ErrorCode.NotFound, "this agent is not attached to a Kamailio (no `kamailio` section in its config)");
    return deps.kamailio;
  };

  rpc.method(ApiMethod.KamailioReload, API_PARAMS[ApiMethod.KamailioReload], async () => {
    const kamailio = attached();
    const status = await kamailio.status();
    // A Kamailio keyed without domains would take every binding under its user part alone (usrloc-keys.ts).
    if (status.writer === "refused") throw new RpcError(ErrorCode.InvalidRequest, `not reloading this node's Kamailio: ${status.lastError ?? "the agent does not attach to it"}`);
    const before = status.reload;
    // A whole one under way is what was asked for; one by difference is not: this one runs after it.
    if (before.state === "running" && before.whole === true) return { started: false, running: true };
    kamailio.reload("requested through the API").catch(() => undefined);
    return { started: true, running: true, ...(before.state === "running" ? { after: before.reason } : {}) };
  });

  rpc.method(ApiMethod.KamailioLookup, API_PARAMS[ApiMethod.KamailioLookup], async (p): Promise<KamailioLookupResult> => {
    return { aor: p.aor, contacts: await attached().lookup(p.aor), nowSec: nowSec() };
  });

  rpc.method(ApiMethod.KamailioList, API_PARAMS[ApiMethod.KamailioList], (p) => attached().list(p));

  rpc.method(ApiMethod.KamailioAlias, API_PARAMS[ApiMethod.KamailioAlias], async (p): Promise<KamailioAliasResult> => {
    const kamailio = attached();
    const view = await kamailio.alias(p.alias);
    const journal = await aliasTarget(p.alias);
    return { alias: p.alias, ...view, journal, agreement: aliasAgreement(view.store, journal, view.kamailio), pendingWrites: kamailio.pendingWrites() };
  });

  rpc.method(ApiMethod.ClusterResync, API_PARAMS[ApiMethod.ClusterResync], async (p): Promise<{ started: boolean; running: true }> => {
    let run: ReturnType<Mesh["resync"]>;
    try {
      run = mesh.resync(p.peer);
    } catch (err) {
      throw new RpcError(ErrorCode.NotFound, (err as Error).message);
    }
    run.done.catch(() => undefined);
    // The one under way, joined: one full pull at a time (a second would pull everything again).
    if (run.joined) return { started: false, running: true };
    // Answer at once; progress is in cluster.status. Surface an immediate refusal (the peer's).
    const early = await Promise.race([run.done.then(() => null, (e: Error) => e), new Promise<null>((r) => setTimeout(() => r(null), 50))]);
    if (early) throw new RpcError(ErrorCode.NotFound, early.message);
    return { started: true, running: true };
  });

  return rpc;
}

/**
 * A change taken now would be thrown away with the journal when the operator follows the remedy,
 * so it is refused, saying what happened, where to make it instead and how to repair the node.
 */
export function journalBehindError(b: JournalBehindInfo): RpcError {
  return new RpcError(
    ErrorCode.JournalBehind,
    `this node's journal is behind: ${journalBehindFinding(b)} ` +
      "(restored from an older copy, or it lost its last commits). It takes no changes until started afresh, as they would be lost then: " +
      `make this change on another node, and repair this one: ${JOURNAL_BEHIND_REMEDY}`,
    b,
  );
}

/**
 * When what location.publish changed goes into the local Kamailio if not at once. A binding given a
 * Call-ID is taken for a phone's registration by the reconcile, which drops it from the journal
 * if this Kamailio lacks it then (a missed de-registration).
 */
const LATER = "the agent keeps the edit in its journal and tries it again at each check of Kamailio (every kamailio.checkIntervalSec) while Kamailio answers, until it is in, " +
  "also after an agent restart; " +
  "a binding given a Call-ID is taken for a phone's registration, and for gone if this Kamailio lacks it then";

/** How long location.publish waits for its AoRs to be brought in line in the local Kamailio. */
const KAMAILIO_APPLY_WAIT_MS = 5000;

/** Brings the local Kamailio in line for AoRs just changed here; what did not happen now, as notes. */
async function applyInKamailio(kamailio: KamailioControl, edited: readonly Change[], log: Logger): Promise<string[]> {
  const aors = new Set(edited.map((c) => c.key));
  const run = kamailio.applyApiEdits(edited.map((c) => ({ aor: c.key, contact: c.sub, hlc: c.hlc })));
  let timer: NodeJS.Timeout | undefined;
  const waited = new Promise<"busy">((r) => (timer = setTimeout(() => r("busy"), KAMAILIO_APPLY_WAIT_MS)));
  try {
    const outcome = await Promise.race([run, waited]);
    if (outcome === "busy") {
      run.catch((err: unknown) => log.warn({ err: (err as Error).message, aors: aors.size }, `could not write a local API edit into this node's Kamailio: ${LATER}`));
      return [`this node's Kamailio is not updated yet (a reload or reconcile is under way, or it answers slowly): it is when that ends, else ${LATER}`];
    }
    return outcome === null ? [] : [`this node's Kamailio is not updated now: ${outcome}`];
  } catch (err) {
    log.warn({ err: (err as Error).message, aors: aors.size }, "could not write a local API edit into this node's Kamailio");
    return [`this node's Kamailio could not be updated now (${(err as Error).message}): ${LATER}`];
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The edits in order: a remove-aor also removes the contacts upserted before it in the same call.
 * Removals leave expired bindings alone (the purge takes them): listed as present nowhere, they
 * would be counted as removed, and `location rm` of an AoR whose bindings all expired said
 * "removed 1 binding" (exit 0) where nothing live was there.
 */
async function toDrafts(p: PublishInput, replica: Replica, now: number): Promise<Draft[]> {
  const drafts: Draft[] = [];
  /** Contacts upserted so far in this call, by AoR. */
  const upserted = new Map<string, Set<string>>();
  for (const e of p.edits) {
    if (e.op === "upsert") {
      const { aor, contact, owner, ...rest } = e.binding;
      const value: BindingValue = { ...rest, owner: owner ?? replica.nodeId };
      drafts.push({ kind: "loc", key: aor, sub: contact, value });
      upserted.set(aor, (upserted.get(aor) ?? new Set()).add(contact));
    } else if (e.op === "remove") {
      const stored = await replica.store.get("loc", e.aor, e.contact);
      if (upserted.get(e.aor)?.has(e.contact) || (stored !== null && isLive(stored, now))) {
        drafts.push({ kind: "loc", key: e.aor, sub: e.contact, value: null });
      }
      upserted.get(e.aor)?.delete(e.contact);
    } else {
      const stored = await replica.draftsForKeyRemoval("loc", e.aor, now);
      const fresh = [...(upserted.get(e.aor) ?? [])].filter((c) => !stored.some((d) => d.sub === c));
      drafts.push(...stored, ...fresh.map((sub): Draft => ({ kind: "loc", key: e.aor, sub, value: null })));
      upserted.delete(e.aor);
    }
  }
  return drafts;
}
