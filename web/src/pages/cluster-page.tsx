/** Cluster health: polls cluster.status and keeps the last minutes of samples for the charts. */
import { useEffect, useRef, useState } from "preact/hooks";
import type { RpcError } from "../../../agent/contract/errors.js";
import { ApiMethod } from "../../../agent/contract/api-protocol.js";
import { isHubStatus } from "../../../agent/contract/cluster-status.js";
import { outcomeUnknown } from "../api/rpc-client.js";
import { useRpc } from "../api/use-rpc.js";
import { LineChart } from "../components/line-chart.js";
import type { ClusterStatusView } from "../lib/cluster-view.js";
import { formatTime } from "../lib/format.js";
import { appendSample, ratePoints, sampleOf, type StatusSample } from "../lib/status-history.js";
import { BatchesRefusedAlert, JournalBehindAlert, JournalNotSeededAlert, KamailioCard, KeysStats, NodeCard, PeerTable, PostgresCard, ResyncCard } from "./cluster-cards.js";

const POLL_MS = 2000;
const WINDOW_MS = 5 * 60_000;

export function ClusterPage() {
  const client = useRpc();
  const [status, setStatus] = useState<ClusterStatusView | null>(null);
  const [history, setHistory] = useState<StatusSample[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [resyncNote, setResyncNote] = useState<string | null>(null);

  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = () =>
      client
        .call<ClusterStatusView>(ApiMethod.ClusterStatus, {})
        .then((s) => {
          if (stopped) return;
          setStatus(s);
          setError(null);
          setHistory((h) => appendSample(h, sampleOf(s, Date.now()), WINDOW_MS));
        })
        .catch((e: RpcError) => !stopped && setError(e.message))
        .finally(() => {
          if (!stopped) timer = setTimeout(poll, POLL_MS);
        });
    void poll();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [client]);

  // One resync at a time: the agent joins a second to the one running (a full pull each).
  const [starting, setStarting] = useState(false);
  const startedTimer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  useEffect(() => () => clearTimeout(startedTimer.current), []);
  const resyncRunning = status?.resync.state === "running";
  const resync = () => {
    if (starting || resyncRunning) return;
    setStarting(true);
    setResyncNote("Starting a resync…");
    client.call<{ started?: boolean }>(ApiMethod.ClusterResync, {}).then(
      (r) => {
        setResyncNote(r.started === false ? "A resync was already running; its progress shows below." : "Resync started; progress shows below.");
        // Until the next status (polled every POLL_MS) shows it running.
        startedTimer.current = setTimeout(() => setStarting(false), POLL_MS + 500);
      },
      (e: RpcError) => {
        setResyncNote(outcomeUnknown(e) ? `Perhaps started: ${e.message}` : `Resync refused: ${e.message}`);
        setStarting(false);
      },
    );
  };

  const points = ratePoints(history);
  const now = history.at(-1)?.atMs ?? Date.now();
  // The x axis grows with the history until it spans the whole window.
  const xMin = Math.max(now - WINDOW_MS, points[0]?.atMs ?? now);
  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title">Cluster health</h1>
      {error && <p class="error" role="alert">{error}</p>}
      {error && status && history.length > 0 && (
        <p class="muted" role="status">What follows is as of {formatTime(new Date(history.at(-1)!.atMs).toISOString())}, when the agent last answered: it may have changed since.</p>
      )}
      {status?.journalBehind && <JournalBehindAlert b={status.journalBehind} />}
      {status?.journalSeeded === false && <JournalNotSeededAlert />}
      {status?.batchesRefused && status.batchesRefused.length > 0 && <BatchesRefusedAlert list={status.batchesRefused} />}
      {status && (
        <>
          <div class="grid">
            <NodeCard s={status} />
            {status.postgres && <PostgresCard p={status.postgres} />}
            {status.kamailio && <KamailioCard k={status.kamailio} />}
            <ResyncCard r={status.resync} />
          </div>
          <div class="card">
            <h2>Peer links</h2>
            <PeerTable peers={status.peers} self={status.nodeId} clusterKeys={status.credentials?.clusterKeys} />
            {status.credentials && <KeysStats c={status.credentials} />}
          </div>
          <div class="grid charts">
            <div class="card"><LineChart title="Changes applied" unit="/s" points={points.map((p) => ({ x: p.atMs, y: p.changesPerSec }))} xMin={xMin} xMax={now} format={(v) => v.toFixed(v < 10 ? 1 : 0)} /></div>
            <div class="card"><LineChart title="Worst peer lag" unit="s" points={points.map((p) => ({ x: p.atMs, y: p.lagSeconds }))} xMin={xMin} xMax={now} format={(v) => v.toFixed(1)} /></div>
          </div>
          {/*
            * A hub dials no peer: cluster.resync there pulls everything from whichever agent's
            * session came first, which nothing calls for (agent/mesh/mesh.ts resync), so the page
            * says how a hub fills instead of offering it.
            */}
          {isHubStatus(status)
            ? <p class="card" role="note">This is a hub: it has no peer to resync from, and needs no resync. Each agent sends it its own changes from where the hub's version vector stands, and the hub pulls from its agents, by itself, the changes of nodes that are not connected, so it refills PostgreSQL unasked (after a restore too). To resync an agent, use that agent's web UI (or <code>locmesh resync</code> against the agent).</p>
            : (
              <div class="card toolbar">
                <button type="button" onClick={resync} disabled={starting || resyncRunning}>{resyncRunning ? "Resync running…" : "Resync from a peer"}</button>
                {resyncNote && <span class="muted" role="status">{resyncNote}</span>}
              </div>
            )}
        </>
      )}
    </section>
  );
}
