/** The cluster page's pieces: this node, a hub's PostgreSQL, its Kamailio writer, the last resync, the peer links. */
import { hubUnacknowledgedText } from "../../../agent/contract/hub-unacknowledged-text.js";
import { acceptedKeysLastUsedBy, keysText } from "../../../agent/contract/keys-text.js";
import { sipPeersText } from "../../../agent/contract/sip-peers-text.js";
import { peerErrorText } from "../../../agent/contract/batches-not-stored-text.js";
import {
  BATCH_REFUSED_REMEDY, JOURNAL_BEHIND_REMEDY, JOURNAL_NOT_SEEDED, journalBehindFinding, isHubStatus, type BatchRefusal, type CredentialsStatus, type JournalBehindInfo, type KeysStatus, type PeerStatus,
  type PostgresStatus, type ResyncStatus,
} from "../../../agent/contract/cluster-status.js";
import { formatCount, formatDuration, formatTime } from "../lib/format.js";
import {
  WRITER_TEXT, connectedSinceText, countText, countsView, eventsText, hubText, interruptedText, linkBadge, postgresView, progress, reconcileText, showsHubs, type ClusterStatusView, type KamailioStatus,
} from "../lib/cluster-view.js";

const upperFirst = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/** This node is out of service until the operator acts: said above everything else. */
export function JournalBehindAlert({ b }: { b: JournalBehindInfo }) {
  return (
    <div class="card" role="alert">
      <h2>Journal behind</h2>
      <p class="error">
        {`${upperFirst(journalBehindFinding(b, formatCount))} ` +
          `(since ${formatTime(b.at)}): the journal was restored from an older copy or lost its last commits. ` +
          "This node replicates with no peer, refuses changes and writes nothing into its Kamailio. Make changes on another node."}
      </p>
      <p>{`To repair it: ${JOURNAL_BEHIND_REMEDY}.`}</p>
    </div>
  );
}

/** A new journal that has not caught up yet: its lists may be a fraction of the cluster's (as `locmesh status` says it). */
export function JournalNotSeededAlert() {
  return (
    <div class="card" role="alert">
      <h2>New journal, not caught up yet</h2>
      <p class="error">{`This node's ${JOURNAL_NOT_SEEDED.replace(/^this node's /, "")}.`}</p>
    </div>
  );
}

/** Peers refuse this node's changes: what they said, and what the operator does (as `locmesh status` says it). */
export function BatchesRefusedAlert({ list }: { list: readonly BatchRefusal[] }) {
  return (
    <div class="card" role="alert">
      <h2>Peers refuse this node's changes</h2>
      {list.map((r) => (
        <p class="error" key={`${r.peer} ${r.origin}`}>
          {`${r.peer} refuses ${r.origin}'s changes since ${formatTime(r.at)}: ${r.reason}` +
            (r.change ? ` (the change: #${r.change.seq}, ${r.change.kind} ${r.change.key} ${r.change.sub})` : "") +
            ". Every later change of it waits behind the refused one and reaches no node."}
        </p>
      ))}
      <p>{list.some((r) => r.change !== null) ? `To repair it: ${BATCH_REFUSED_REMEDY}.` : "The refusing node's log says why."}</p>
    </div>
  );
}

export function NodeCard({ s }: { s: ClusterStatusView }) {
  const counts = countsView(s.postgres);
  return (
    <div class="card stat-card">
      <h2>Node {s.nodeId}</h2>
      <dl class="stats">
        <Stat k="Replica" v={s.replicaId} mono />
        <Stat k="Version" v={`locmesh ${s.version}, protocol ${s.protocol}`} />
        <Stat k="Up for" v={formatDuration(s.uptimeSeconds)} />
        <Stat k="Locations" v={countText(s.counts.locations, counts)} />
        <Stat k="Aliases" v={countText(s.counts.aliases, counts)} />
        {counts.age && <Stat k="Counts" v={counts.age} />}
        {/* A hub (it reports its PostgreSQL) has no Kamailio: its figure is the sum its agents report. */}
        <Stat k={isHubStatus(s) ? "Agents' pending Kamailio writes" : "Pending Kamailio writes"} v={formatCount(s.kamailio?.pendingWrites ?? s.pendingWrites)} />
        {/* An agent in hub mode: its changes no hub holds yet, as `locmesh status` says them. */}
        {s.hubUnacknowledged !== undefined && <Stat k="Unacknowledged by hub" v={hubUnacknowledgedText(s)} />}
      </dl>
    </div>
  );
}

/** A hub's PostgreSQL: answering, failing or unreachable and why, and what the hub does meanwhile. */
export function PostgresCard({ p }: { p: PostgresStatus }) {
  const v = postgresView(p);
  return (
    <div class="card stat-card">
      <h2>PostgreSQL</h2>
      <p><span class={`badge ${v.badge.cls}`}>{v.badge.text}</span> {v.headline}</p>
      {v.error && <p class="error">{v.error}</p>}
      {v.consequence && <p>{v.consequence}</p>}
    </div>
  );
}

export function KamailioCard({ k }: { k: KamailioStatus }) {
  const r = k.reload;
  const p = r?.state === "running" ? progress(r.done, r.total) : null;
  return (
    <div class="card stat-card">
      <h2>Kamailio</h2>
      <dl class="stats">
        {k.up !== undefined && <Stat k="Answering" v={k.up ? "yes" : "no"} />}
        <Stat k="Writing through" v={WRITER_TEXT[k.writer ?? ""] ?? k.writer ?? "unknown"} />
        <Stat k="Pending writes" v={formatCount(k.pendingWrites ?? 0)} />
        {!!k.rejected && <Stat k="Writes refused" v={formatCount(k.rejected)} />}
        {k.events && <Stat k="Registrar events" v={eventsText(k.events)} />}
        {r && r.state !== "idle" && <Stat k="Reload" v={`${r.state ?? "unknown"}${r.total ? ` (${formatCount(r.done ?? 0)} of ${formatCount(r.total)})` : ""}`} />}
        {!!r?.refused && <Stat k="Reload writes refused" v={`${formatCount(r.refused)}, skipped (the agent's log names them)`} />}
        {r?.interrupted && <Stat k="Previous reload" v={interruptedText(r.interrupted)} />}
        {k.lastReconcile && <Stat k="Last reconcile" v={`${formatTime(k.lastReconcile.at)}, ${reconcileText(k.lastReconcile)}`} />}
        {!!k.restarts && <Stat k="Restarts seen" v={formatCount(k.restarts)} />}
        {k.sipPeers && <Stat k="Nodes that may relay calls" v={sipPeersText(k.sipPeers)} />}
      </dl>
      {p !== null && <Progress value={p} label="Kamailio reload" />}
      {k.lastError && <p class="error">{k.lastError}</p>}
      {(k.warnings ?? []).map((w) => <p class="error">{`Warning: ${w}`}</p>)}
      {r?.error && <p class="error">{`Reload: ${r.error}`}</p>}
    </div>
  );
}

export function ResyncCard({ r }: { r: ResyncStatus }) {
  const p = progress(r.received, r.expected);
  return (
    <div class="card stat-card">
      <h2>Last resync</h2>
      <dl class="stats">
        <Stat k="State" v={r.state === "idle" ? "none since start" : r.state} />
        {r.full === false && <Stat k="Kind" v="relay catch-up (a node's changes it missed, pulled by itself)" />}
        {r.peer && <Stat k="From peer" v={r.peer} />}
        {r.state !== "idle" && <Stat k="Received" v={`${formatCount(r.received)}${r.expected ? ` of ~${formatCount(r.expected)}` : ""}`} />}
        {r.startedAt && <Stat k="Started" v={formatTime(r.startedAt)} />}
        {r.finishedAt && <Stat k="Finished" v={formatTime(r.finishedAt)} />}
      </dl>
      {r.state === "running" && p !== null && <Progress value={p} label="Resync" />}
      {r.error && <p class="error">{r.error}</p>}
    </div>
  );
}

/**
 * `self`: this node's id, so that the Hub column can say "this hub". `clusterKeys`: this node's
 * keys, so that a peer's row says which key, accepted now, it was the last to prove itself with
 * (in whichever role the key had here then: contract/keys-text.ts).
 */
export function PeerTable({ peers, self, clusterKeys }: { peers: PeerStatus[]; self: string; clusterKeys?: KeysStatus }) {
  if (peers.length === 0) return <p class="empty">This node has no peers configured.</p>;
  const hubs = showsHubs(peers);
  return (
    <div class="table-wrap">
      <table class="stack">
        <caption class="visually-hidden">Peer links</caption>
        <thead>
          <tr><th scope="col">Peer</th><th scope="col">Link</th>{hubs && <th scope="col">Hub</th>}<th scope="col" class="num">Behind (changes)</th><th scope="col" class="num">Behind (s)</th><th scope="col">Connected since</th><th scope="col">Last error</th></tr>
        </thead>
        <tbody>
          {peers.map((p) => (
            <tr key={p.nodeId} data-peer={p.nodeId}>
              <th scope="row" class="break">
                {p.nodeId}<div class="muted mono small">{p.url ?? "inbound only"}</div>
                {acceptedKeysLastUsedBy(clusterKeys, p.nodeId).map((a) => (
                  <div class="muted small peer-key" key={a.id}>{`last to prove itself here with cluster key ${a.id} (one this node accepts now), ${formatDuration(a.lastUsedAgeSeconds ?? 0)} ago`}</div>
                ))}
              </th>
              <td data-label="Link"><LinkBadge peer={p} />{p.direction && <span class="muted small"> {p.direction}</span>}</td>
              {hubs && <td data-label="Hub">{hubText(p.hub, self, p.asOf)}</td>}
              <td class="num" data-label="Behind (changes)">{p.behindChanges === null ? "—" : formatCount(p.behindChanges)}</td>
              <td class="num" data-label="Behind (s)">{p.behindSeconds === null ? "—" : p.behindSeconds.toFixed(1)}</td>
              {/* While the link is down, when it was last up (if known); none while the agent is on another hub (only that hub knows it). */}
              <td data-label="Connected since">{connectedSinceText(p)}</td>
              {/* The peer's batches this node fails to store (a hub whose PostgreSQL fails), then the link's own error. */}
              <td class={p.batchesNotStored ? "clip error" : "clip"} data-label="Last error">{peerErrorText(p, formatTime) ?? "—"}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** This node's cluster keys and API tokens by id, and who last used each accepted one, as `locmesh status` says them. */
export function KeysStats({ c }: { c: CredentialsStatus }) {
  return (
    <dl class="stats keys" aria-label="Keys and tokens">
      <Stat k="Cluster keys" v={keysText(c.clusterKeys, "clusterKeys", formatDuration)} />
      <Stat k="API tokens" v={keysText(c.apiTokens, "apiTokens", formatDuration)} />
    </dl>
  );
}

function LinkBadge({ peer }: { peer: PeerStatus }) {
  const b = linkBadge(peer);
  return <span class={`badge ${b.cls}`}>{b.text}</span>;
}

function Stat(props: { k: string; v: string; mono?: boolean }) {
  return (
    <div class="stat">
      <dt>{props.k}</dt>
      <dd class={props.mono ? "mono break" : undefined}>{props.v}</dd>
    </div>
  );
}

function Progress(props: { value: number; label: string }) {
  return <progress max={1} value={props.value} aria-label={`${props.label} progress`}>{`${Math.round(props.value * 100)}%`}</progress>;
}
