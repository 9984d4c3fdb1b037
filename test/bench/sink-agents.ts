/**
 * Sink agents for the hub bench's "hub tier" figures: `agents` are spread over `processes` forked
 * sink-process.js children, each agent dialing its hubs like a real agent in hub mode. The bench
 * reads how many changes each has taken, and when tracked changes arrived.
 */
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

export interface SinkSpec {
  secret: string;
  agents: { id: string; hubUrls: string[] }[];
}

export type SinkRequest =
  | { type: "counts" }
  | { type: "track"; prefix: string; total: number }
  | { type: "arrivals" }
  /** Each agent named in `first` publishes `count` single alias edits at `perSecond`, keyed by index `first[id] + k × stride`. */
  | { type: "publish"; prefix: string; first: Record<string, number>; stride: number; count: number; perSecond: number }
  | { type: "close" };
export type SinkReply =
  | { type: "ready" }
  | { type: "counts"; taken: Record<string, number>; tracked: Record<string, number> }
  | { type: "tracking" }
  | { type: "arrivals"; arrivals: Record<string, (number | null)[]> }
  /** When each published index was committed (ms since the epoch), once all are. */
  | { type: "published"; sentAt: Record<number, number> };

export interface SinkAgents {
  readonly ids: readonly string[];
  /** The forked processes, for CPU meters. */
  readonly processes: readonly { id: string; pid: number }[];
  /** Per agent: the changes it has taken (each counted once), and how many of the tracked ones. */
  counts(): Promise<{ taken: Record<string, number>; tracked: Record<string, number> }>;
  /** Start noting arrivals of `${prefix}${index}` keys (see SinkStore.track). */
  track(prefix: string, total: number): Promise<void>;
  /** Per agent, arrival times (ms since the epoch) of the tracked changes by index, null if unseen. */
  arrivals(): Promise<Record<string, (number | null)[]>>;
  /**
   * Every agent publishes `perAgent` single alias edits `${prefix}${7-digit index}@example.com` at
   * `perSecond` each, agent i taking indexes i, i + n, i + 2n, …; resolves with when each index was
   * committed (ms since the epoch).
   */
  publish(prefix: string, perAgent: number, perSecond: number): Promise<Record<number, number>>;
  close(): Promise<void>;
}

const ENTRY = fileURLToPath(new URL("./sink-process.js", import.meta.url));

export async function startSinkAgents(o: { secret: string; agents: SinkSpec["agents"]; processes: number }): Promise<SinkAgents> {
  const children: ChildProcess[] = [];
  const ask = <T extends SinkReply["type"]>(child: ChildProcess, m: SinkRequest, type: T) =>
    new Promise<Extract<SinkReply, { type: T }>>((resolve, reject) => {
      const onMessage = (r: SinkReply) => {
        if (r.type !== type) return;
        done();
        resolve(r as Extract<SinkReply, { type: T }>);
      };
      const onExit = (code: number | null) => {
        done();
        reject(new Error(`a sink agent process (pid ${child.pid}) exited with code ${code} before answering ${m.type}`));
      };
      const done = () => {
        child.off("message", onMessage);
        child.off("exit", onExit);
      };
      child.on("message", onMessage);
      child.once("exit", onExit);
      child.send(m);
    });
  const all = async <T extends SinkReply["type"]>(m: SinkRequest, type: T) => Promise.all(children.map((c) => ask(c, m, type)));

  try {
    for (let p = 0; p < o.processes; p++) {
      const spec: SinkSpec = { secret: o.secret, agents: o.agents.filter((_, i) => i % o.processes === p) };
      const child = fork(ENTRY, [JSON.stringify(spec)], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
      children.push(child);
      await new Promise<void>((resolve, reject) => {
        child.once("message", () => resolve());
        child.once("exit", (code) => reject(new Error(`a sink agent process exited with code ${code} while starting`)));
      });
    }
  } catch (err) {
    for (const c of children) c.kill("SIGKILL");
    throw err;
  }

  return {
    ids: o.agents.map((a) => a.id),
    processes: children.map((c, i) => ({ id: `sink${i + 1}`, pid: c.pid! })),
    async counts() {
      const replies = await all({ type: "counts" }, "counts");
      return {
        taken: Object.assign({}, ...replies.map((r) => r.taken)) as Record<string, number>,
        tracked: Object.assign({}, ...replies.map((r) => r.tracked)) as Record<string, number>,
      };
    },
    async track(prefix, total) {
      await all({ type: "track", prefix, total }, "tracking");
    },
    async arrivals() {
      return Object.assign({}, ...(await all({ type: "arrivals" }, "arrivals")).map((r) => r.arrivals)) as Record<string, (number | null)[]>;
    },
    async publish(prefix, perAgent, perSecond) {
      const first = Object.fromEntries(o.agents.map((a, i) => [a.id, i]));
      const replies = await all({ type: "publish", prefix, first, stride: o.agents.length, count: perAgent, perSecond }, "published");
      return Object.assign({}, ...replies.map((r) => r.sentAt)) as Record<number, number>;
    },
    async close() {
      await Promise.all(children.map((c) => new Promise<void>((resolve) => {
        if (c.exitCode !== null || c.signalCode !== null) return resolve();
        const timer = setTimeout(() => c.kill("SIGKILL"), 5000);
        c.once("exit", () => {
          clearTimeout(timer);
          resolve();
        });
        c.send({ type: "close" } satisfies SinkRequest);
      })));
    },
  };
}
