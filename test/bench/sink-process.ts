/**
 * A process that runs several sink agents for the hub bench (see sink-store.ts): each is the
 * agent's own mesh (hub dialer, authentication, session, batch checks, acknowledgements) over a
 * store that only counts. Forked by sink-agents.ts, which talks to it over the IPC channel.
 *
 * argv[2]: JSON { secret, agents: [{ id, hubUrls }] }.
 */
import { buildConfigSchema } from "../../agent/config/config-schema.js";
import { nodeFs } from "../../agent/config/config-sources.js";
import { createHlc } from "../../agent/core/hlc.js";
import { createJournalBehind } from "../../agent/core/journal-behind.js";
import { createReplica, type Replica } from "../../agent/core/replica.js";
import { createMesh, type Mesh } from "../../agent/mesh/mesh.js";
import { createKeyRing } from "../../agent/ops/key-ring.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { createMetrics } from "../../agent/ops/metrics.js";
import { createSinkStore, type SinkStore } from "./sink-store.js";
import type { SinkReply, SinkRequest, SinkSpec } from "./sink-agents.js";

const spec = JSON.parse(process.argv[2] ?? "") as SinkSpec;
const send = (m: SinkReply) => process.send!(m);

const agents: { id: string; store: SinkStore; mesh: Mesh; replica: Replica }[] = [];
for (const a of spec.agents) {
  // The agent's own config schema gives its mesh defaults; the status interval and retry are the
  // bench agents' (test/support/agent-process.ts). In hub mode with no peers the mesh opens no
  // peer port (agent/mesh/peer-listener.ts); the listen address is only there to satisfy the schema.
  const config = buildConfigSchema(nodeFs).parse({
    nodeId: a.id,
    mesh: { secret: spec.secret, listen: "127.0.0.1:0", statusIntervalMs: 250, retry: { minMs: 50, maxMs: 1000 } },
    api: { token: "sink-agents-have-no-api" },
    hub: { urls: a.hubUrls },
    journal: {},
    log: {},
  });
  const store = createSinkStore(a.id);
  const replica = createReplica({ store, hlc: createHlc({ wallMillis: Date.now }), log: silentLogger() });
  const mesh = createMesh({
    keys: createKeyRing({ own: config.mesh.secret, accepted: [] }),
    options: { ...config.mesh, nodeId: a.id, hubUrls: config.hub.urls },
    replica,
    log: silentLogger(),
    metrics: createMetrics({ defaults: false }),
    journalBehind: createJournalBehind(),
  });
  await mesh.start();
  agents.push({ id: a.id, store, mesh, replica });
}

process.on("message", (m: SinkRequest) => {
  switch (m.type) {
    case "counts":
      return send({
        type: "counts",
        taken: Object.fromEntries(agents.map((a) => [a.id, a.store.taken()])),
        tracked: Object.fromEntries(agents.map((a) => [a.id, a.store.trackedSeen()])),
      });
    case "track":
      for (const a of agents) a.store.track(m.prefix, m.total);
      return send({ type: "tracking" });
    case "arrivals":
      return send({ type: "arrivals", arrivals: Object.fromEntries(agents.map((a) => [a.id, a.store.arrivals()])) });
    case "publish":
      return void publish(m).then((sentAt) => send({ type: "published", sentAt }));
    case "close":
      void Promise.all(agents.map((a) => a.mesh.close())).finally(() => process.exit(0));
  }
});
/**
 * Paced on one timer for all of this process's agents, each on its own phase (its index among all
 * agents over their number, of one period), as independent nodes publish: in lockstep, every agent's
 * edit of a period would reach the hub in one burst.
 */
async function publish(m: Extract<SinkRequest, { type: "publish" }>): Promise<Record<number, number>> {
  const mine = agents.filter((a) => m.first[a.id] !== undefined).map((a) => ({ a, first: m.first[a.id]!, done: 0 }));
  const sentAt: Record<number, number> = {};
  const t0 = performance.now();
  const pending: Promise<unknown>[] = [];
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const elapsed = ((performance.now() - t0) / 1000) * m.perSecond;
      let left = false;
      for (const x of mine) {
        const phase = x.first / m.stride;
        for (; x.done < m.count && x.done + phase <= elapsed; x.done++) {
          const index = x.first + x.done * m.stride;
          const key = `${m.prefix}${String(index).padStart(7, "0")}@example.com`;
          // From the publish, as the latency probe times an agent's (its commit included).
          sentAt[index] = performance.timeOrigin + performance.now();
          pending.push(x.a.replica.commit([{ kind: "alias", key, sub: "", value: { target: "sip:t@example.com" } }]));
        }
        if (x.done < m.count) left = true;
      }
      if (!left) {
        clearInterval(tick);
        resolve();
      }
    }, 5);
  });
  await Promise.all(pending);
  return sentAt;
}

// The bench went away without closing us (it crashed or was killed): do not dial the hub forever.
process.on("disconnect", () => process.exit(0));
send({ type: "ready" });
