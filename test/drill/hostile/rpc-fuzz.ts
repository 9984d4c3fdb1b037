/**
 * Throws fuzzed JSON-RPC frames at an agent, over a WebSocket (the peer port or the API's /rpc,
 * many frames pipelined per connection) or over HTTP POST /rpc (several requests in flight), and
 * keeps the score: every answer owed must come, and only well-formed reads may be answered with a
 * result (classify.ts decides which frames those are, before they are sent).
 */
import type { RpcWire, WireMessage } from "../../support/rpc-wire.js";
import { classifyFrame, type FrameVerdict, type Surface } from "./classify.js";
import { boundedMutant, type Rng } from "./mutate.js";

export interface RpcFuzzFigures {
  /** Frames sent. */
  sent: number;
  /** Mutants not sent: well-formed writes, or frames whose answers could not be told apart. */
  skipped: number;
  /** Frames sent that were well-formed reads (their result answers are fine). */
  wellFormed: number;
  /** Answers owed, and received. */
  owed: number;
  answered: number;
  errors: number;
  results: number;
  /** Results to frames that were not well-formed reads: must be 0. */
  nonErrorToMalformed: number;
  /** Answers owed that never came: must be 0. */
  unanswered: number;
  /** Answers that were not JSON-RPC responses (e.g. an HTTP 500 page): must be 0. */
  notJsonRpc: number;
  examples: string[];
}

export const newFigures = (): RpcFuzzFigures => ({
  sent: 0, skipped: 0, wellFormed: 0, owed: 0, answered: 0, errors: 0, results: 0, nonErrorToMalformed: 0, unanswered: 0, notJsonRpc: 0, examples: [],
});

export function addFigures(into: RpcFuzzFigures, f: RpcFuzzFigures): void {
  for (const k of Object.keys(f) as (keyof RpcFuzzFigures)[]) {
    if (k === "examples") into.examples.push(...f.examples.slice(0, Math.max(0, 5 - into.examples.length)));
    else into[k] += f[k];
  }
}

export interface Frame {
  text: string;
  verdict: FrameVerdict;
}

/** A message builder: the same valid message, with the request id it is given. */
export type Base = (id: number) => unknown;

/**
 * `count` frames for `surface`: the hand-written ones first, then mutants of the bases. Mutants
 * the classifier says must not be sent are counted in `skipped` and replaced.
 */
export function* fuzzFrames(rng: Rng, o: { bases: readonly Base[]; handWritten: readonly string[]; surface: Surface; count: number }, fig: RpcFuzzFigures): Generator<Frame> {
  let made = 0;
  let nextId = 1_000_000;
  const frame = (raw: string): Frame | null => {
    // What the agent reads is the UTF-8 of what we send: lone surrogates arrive as U+FFFD.
    const text = Buffer.from(raw, "utf8").toString("utf8");
    const verdict = classifyFrame(text, o.surface);
    if (verdict.skip !== null) {
      fig.skipped++;
      return null;
    }
    return { text, verdict };
  };
  for (const raw of o.handWritten) {
    if (made >= o.count) return;
    const f = frame(raw);
    if (f) {
      made++;
      yield f;
    }
  }
  for (let attempts = 0; made < o.count && attempts < o.count * 20; attempts++) {
    const f = frame(boundedMutant(rng, rng.pick(o.bases)(nextId++)));
    if (f) {
      made++;
      yield f;
    }
  }
}

/** Scores the answers to one chunk of frames. */
class Chunk {
  owed = 0;
  got = 0;
  private readonly reads = new Set<unknown>();
  private readonly used = new Set<unknown>();

  constructor(private readonly fig: RpcFuzzFigures) {}

  /** False when the frame's ids clash with ids already in flight (its answers could be mistaken). */
  add(f: Frame): boolean {
    if (f.verdict.ids.some((id) => this.used.has(id) && id !== null) || f.verdict.readIds.some((id) => typeof id === "number" && !Number.isFinite(id))) {
      this.fig.skipped++;
      return false;
    }
    for (const id of f.verdict.ids) this.used.add(id);
    for (const id of f.verdict.readIds) this.reads.add(id);
    this.owed += f.verdict.answers;
    this.fig.sent++;
    this.fig.owed += f.verdict.answers;
    if (f.verdict.valid) this.fig.wellFormed++;
    return true;
  }

  /** One answer as received (an object, or a batch answer's array). */
  answer(a: unknown, sentText?: string): void {
    for (const r of Array.isArray(a) ? a : [a]) {
      this.got++;
      this.fig.answered++;
      const m = r as WireMessage | null;
      if (m === null || typeof m !== "object" || m.jsonrpc !== "2.0" || !("id" in m)) {
        this.fig.notJsonRpc++;
        this.example(`not a JSON-RPC answer: ${JSON.stringify(r)?.slice(0, 160)}`);
      } else if (m.error !== undefined) {
        this.fig.errors++;
      } else {
        this.fig.results++;
        if (!this.reads.has(m.id)) {
          this.fig.nonErrorToMalformed++;
          this.example(`result to a malformed frame: ${JSON.stringify(m).slice(0, 160)}${sentText ? ` (sent ${sentText.slice(0, 160)})` : ""}`);
        }
      }
    }
  }

  finish(): void {
    if (this.got < this.owed) {
      this.fig.unanswered += this.owed - this.got;
      this.example(`${this.owed - this.got} of ${this.owed} answers never came`);
    }
  }

  private example(s: string): void {
    if (this.fig.examples.length < 5) this.fig.examples.push(s);
  }
}

export interface WireFuzzOptions {
  /** Frames pipelined before waiting for their answers. */
  chunk: number;
  /** How long to wait for a chunk's answers. */
  timeoutMs: number;
  /** Answers requests the agent itself sends us (a peer's repl.batch, repl.pull). */
  onRequest?(m: WireMessage): unknown;
}

/** Sends `frames` down an open WebSocket in chunks; resolves early if the agent closes it. */
export async function fuzzWire(wire: RpcWire, frames: Iterable<Frame>, o: WireFuzzOptions, fig: RpcFuzzFigures): Promise<void> {
  let cursor = wire.messages.length;
  const it = frames[Symbol.iterator]();
  let done = false;
  while (!done && wire.ws.readyState === wire.ws.OPEN) {
    const chunk = new Chunk(fig);
    for (let n = 0; n < o.chunk; n++) {
      const r = it.next();
      if (r.done) {
        done = true;
        break;
      }
      if (chunk.add(r.value)) wire.sendText(r.value.text);
      // Making mutants is CPU work: let the rest of this process (the drill's mesh relays) run.
      if (n % 50 === 49) await new Promise((go) => setImmediate(go));
    }
    const until = Date.now() + o.timeoutMs;
    for (;;) {
      for (; cursor < wire.messages.length; cursor++) {
        const m = wire.messages[cursor] as WireMessage;
        if (!Array.isArray(m) && typeof m.method === "string") {
          if (m.id !== undefined && o.onRequest) wire.sendText(JSON.stringify({ jsonrpc: "2.0", id: m.id, result: o.onRequest(m) }));
          continue;
        }
        chunk.answer(m);
      }
      if (chunk.got >= chunk.owed || Date.now() > until || wire.ws.readyState !== wire.ws.OPEN) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    chunk.finish();
  }
}

/** POSTs each frame to /rpc with `concurrency` requests in flight. */
export async function fuzzHttp(apiUrl: string, token: string, frames: Iterable<Frame>, concurrency: number, fig: RpcFuzzFigures): Promise<void> {
  const it = frames[Symbol.iterator]();
  const worker = async () => {
    for (let r = it.next(); !r.done; r = it.next()) {
      const chunk = new Chunk(fig);
      if (!chunk.add(r.value)) continue;
      try {
        const res = await fetch(`${apiUrl}/rpc`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
          body: r.value.text,
          signal: AbortSignal.timeout(30_000),
        });
        const body = await res.text();
        if (res.status !== 204) {
          let parsed: unknown;
          try {
            parsed = JSON.parse(body);
          } catch {
            parsed = { unparsed: body.slice(0, 100), status: res.status };
          }
          chunk.answer(parsed, r.value.text);
        }
      } catch (err) {
        if (fig.examples.length < 5) fig.examples.push(`POST failed: ${(err as Error).message}`);
      }
      chunk.finish();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}
