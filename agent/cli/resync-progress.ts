/**
 * `locmesh resync`: starts a full resync on the agent and follows it through `cluster.status`
 * until it is done or failed, as a progress bar on a terminal and as plain lines otherwise (JSON
 * lines with --json) so logs and scripts get something readable.
 */
import { setTimeout as sleep } from "node:timers/promises";
import cliProgress from "cli-progress";
import { ApiMethod } from "../contract/api-protocol.js";
import type { ClusterStatus, ResyncStatus } from "../contract/cluster-status.js";
import type { KamailioReloadStatus } from "../contract/kamailio-status.js";
import type { ApiClient } from "./api-client.js";
import { refusedText } from "./client-output.js";
import { cellText } from "./table.js";

export interface ResyncOptions {
  peer?: string;
  json: boolean;
  stdout: NodeJS.WritableStream;
  pollMs?: number;
  /** How long to wait for the agent to show the resync it accepted before giving up. */
  startTimeoutMs?: number;
  /**
   * Aborted (Ctrl-C): stop following at once, rejecting with FollowStopped. The run is the agent's
   * and goes on; only the command ends.
   */
  signal?: AbortSignal;
}

/** Following was stopped through ResyncOptions.signal (Ctrl-C); the message says what became of the run. */
export class FollowStopped extends Error {
  override readonly name = "FollowStopped";
}

/** What the bar and the plain lines show of a run, whichever kind it is. */
interface Progress {
  state: ResyncStatus["state"];
  /** Said after "done: N writes" (a reload's writes Kamailio refused). */
  note?: string;
  /** The peer a resync pulls from; null for a reload. */
  peer: string | null;
  done: number;
  /** Expected total (a peer's estimate for a resync). */
  expected: number;
  error: string | null;
}

/** How a run of kind T is shown: `--json` prints T itself, one line per update. */
interface ProgressView<T> {
  update(r: T): void;
  finish(r: T): void;
  /**
   * Puts the view away however the following ended (idempotent). The bar's redraw timer would
   * otherwise keep the process alive after an error, and its ESC[?7l leave the terminal without
   * line wrapping.
   */
  close(): void;
}

const resyncProgress = (r: ResyncStatus): Progress => ({ state: r.state, peer: r.peer, done: r.received, expected: r.expected, error: r.error });
const reloadProgress = (r: KamailioReloadStatus): Progress => ({ state: r.state, peer: null, done: r.done, expected: r.total, error: r.error, note: refusedText(r) });

/** Runs a resync to its end and returns the final status; the caller decides the exit code. */
export async function runResync(client: ApiClient, opts: ResyncOptions): Promise<ResyncStatus> {
  const pollMs = opts.pollMs ?? 250;
  const startTimeoutMs = opts.startTimeoutMs ?? 10_000;
  const { phase, step } = followSteps(opts.signal, "resync");
  // The status keeps the previous run's result; a new startedAt (or seeing it run) tells ours apart.
  const before = (await step(client.call<ClusterStatus>(ApiMethod.ClusterStatus))).resync;
  phase.asked = true;
  const answer = await step(client.call<{ started?: boolean }>(ApiMethod.ClusterResync, opts.peer === undefined ? {} : { peer: opts.peer }));
  phase.started = true;
  // A resync under way is joined (started: false): one full pull at a time.
  const joined = answer.started === false;
  const view = createView(opts, "resync", "changes", resyncProgress);
  let since = Date.now();
  let ours = false;
  try {
    for (;;) {
      const r = (await step(client.call<ClusterStatus>(ApiMethod.ClusterStatus))).resync;
      // A relay catch-up under way goes first, ours or the one we joined waiting for it; it is not
      // ours. (An agent before `full` reports none: any run then counts, as before.)
      const behindOther = r.state === "running" && r.full === false;
      ours ||= !behindOther && r.full !== false && (joined || r.state === "running" || r.startedAt !== before.startedAt);
      if (ours && r.state === "idle") throw gone("resync", "locmesh resync");
      if (ours && (r.state === "done" || r.state === "failed")) {
        view.finish(r);
        return r;
      }
      if (ours) view.update(r);
      else if (behindOther) since = Date.now(); // waiting for the catch-up to end
      else if (Date.now() - since > startTimeoutMs) {
        throw new Error(`the agent accepted the resync but has not started it after ${startTimeoutMs / 1000} s; see the agent's log`);
      }
      await step(sleep(pollMs));
    }
  } finally {
    view.close();
  }
}

/**
 * `locmesh resync --kamailio`: has the agent write its whole live state into the local Kamailio
 * again and follows `cluster.status`'s kamailio.reload the same way.
 */
export async function runKamailioReload(client: ApiClient, opts: Omit<ResyncOptions, "peer">): Promise<KamailioReloadStatus> {
  const pollMs = opts.pollMs ?? 250;
  const startTimeoutMs = opts.startTimeoutMs ?? 10_000;
  const { phase, step } = followSteps(opts.signal, "reload");
  const reloadOf = async () => {
    const k = (await step(client.call<ClusterStatus>(ApiMethod.ClusterStatus))).kamailio;
    if (!k) throw new Error("this agent is not attached to a Kamailio (no `kamailio` section in its config)");
    return k.reload;
  };
  const before = await reloadOf();
  phase.asked = true;
  await step(client.call(ApiMethod.KamailioReload, {}));
  phase.started = true;
  // With --json, the reload's own fields (done, total, ...), not a resync's.
  const view = createView(opts, "kamailio reload", "writes", reloadProgress);
  let since = Date.now();
  // A whole reload under way is joined; one by difference is not ours: ours runs after it. (An
  // agent before `whole` reports none: any run then counts, as before.)
  const joined = before.state === "running" && before.whole !== false;
  let ours = joined;
  try {
    for (;;) {
      const r = await reloadOf();
      // A reload by difference (the one under way before, or one a Kamailio restart made due meanwhile).
      const behindOther = !joined && r.state === "running" && r.whole === false;
      ours ||= !behindOther && r.whole !== false && (r.state === "running" || r.startedAt !== before.startedAt);
      if (ours && r.state === "idle") throw gone("reload", "locmesh resync --kamailio");
      if (ours && (r.state === "done" || r.state === "failed")) {
        view.finish(r);
        return r;
      }
      if (ours) view.update(r);
      else if (behindOther) since = Date.now(); // waiting for the reload by difference to end
      else if (Date.now() - since > startTimeoutMs) throw new Error(`the agent accepted the reload but has not started it after ${startTimeoutMs / 1000} s; see the agent's log`);
      await step(sleep(pollMs));
    }
  } finally {
    view.close();
  }
}

/**
 * Why `locmesh resync --kamailio` exits 1 after following the reload, or null: it failed, or it
 * finished with writes Kamailio refused (those bindings or aliases are missing there).
 */
export function reloadFailure(k: KamailioReloadStatus): Error | null {
  if (k.state === "failed") return new Error(`kamailio reload failed: ${k.error ?? "no reason given (see the agent's log)"}`);
  if (k.refused) return new Error(`kamailio reload done, but Kamailio refused ${k.refused} write(s), which were skipped: the agent's log names them ("reload skipped")`);
  return null;
}

/**
 * The steps of following a run: each await ends at once when `signal` aborts (Ctrl-C), saying what
 * that means at the point reached (`phase`: asked the agent to start it, and it answered).
 */
function followSteps(signal: AbortSignal | undefined, what: "resync" | "reload") {
  const phase = { asked: false, started: false };
  const step = <T>(p: Promise<T>) =>
    unlessStopped(p, signal, () =>
      !phase.asked ? `stopped before the ${what} was asked for: nothing was started`
      : !phase.started ? `stopped while the agent was asked to start the ${what}: whether it started is unknown; see \`locmesh status\``
      : `stopped following; the ${what} goes on in the agent (Ctrl-C does not stop it): follow it with \`locmesh status\``);
  return { phase, step };
}

/**
 * `p`, or FollowStopped (saying `why()`) as soon as `signal` aborts: a poll waiting for an agent
 * that does not answer must not hold Ctrl-C up to the client's timeout. A call left in flight is
 * aborted by the client's close.
 */
function unlessStopped<T>(p: Promise<T>, signal: AbortSignal | undefined, why: () => string): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(new FollowStopped(why()));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new FollowStopped(why()));
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** Once followed, a run never goes back to idle unless the agent restarted and forgot it. */
const gone = (what: string, again: string) =>
  new Error(`the agent no longer reports this ${what} (it restarted meanwhile?); what was already written stays: run \`${again}\` again`);

function createView<T>(opts: Pick<ResyncOptions, "json" | "stdout">, label: string, unit: string, progressOf: (r: T) => Progress): ProgressView<T> {
  const tty = (opts.stdout as { isTTY?: boolean }).isTTY === true;
  if (opts.json) return lineView(opts.stdout, (r: T) => JSON.stringify(r));
  const line = (r: T) => plainLine(progressOf(r), label, unit);
  if (!tty) return lineView(opts.stdout, line);
  return barView(opts.stdout, label, unit, progressOf, line);
}

function plainLine(r: Progress, label: string, unit: string): string {
  const from = r.peer ? ` from ${cellText(r.peer)}` : "";
  // The error can be a peer's text, off the network: made safe as every other cell is.
  if (r.state === "failed") return `${label}${from} failed after ${r.done} ${unit}: ${r.error === null ? "see the agent's log" : cellText(r.error)}`;
  if (r.state === "done") return `${label}${from} done: ${r.done} ${unit}${r.note ?? ""}`;
  return `${label}${from}: ${r.state}, ${r.done} of ~${r.expected} ${unit}`;
}

/** One line per change of state or count, at most one a second while running, plus the last. */
function lineView<T>(out: NodeJS.WritableStream, render: (r: T) => string): ProgressView<T> {
  let last = "";
  let lastAt = 0;
  const write = (r: T, force: boolean) => {
    const line = render(r);
    if (line === last || (!force && Date.now() - lastAt < 1000)) return;
    out.write(`${line}\n`);
    [last, lastAt] = [line, Date.now()];
  };
  return { update: (r) => write(r, false), finish: (r) => write(r, true), close: () => undefined };
}

function barView<T>(out: NodeJS.WritableStream, label: string, unit: string, progressOf: (r: T) => Progress, line: (r: T) => string): ProgressView<T> {
  const bar = new cliProgress.SingleBar(
    {
      stream: out,
      format: `${label}{from} [{bar}] {percentage}% | {value}/~{total} ${unit}`,
      // `expected` starts at 0 until the peer has estimated it; show an empty bar, not a full one.
      emptyOnZero: true,
      hideCursor: false,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  const show = (run: T) => {
    const r = progressOf(run);
    const from = r.peer ? ` from ${cellText(r.peer)}` : "";
    // `expected` is the peer's estimate and can fall behind what has already arrived.
    const total = Math.max(r.expected, r.done);
    if (!started) {
      bar.start(total, r.done, { from });
      started = true;
      return;
    }
    bar.setTotal(total);
    bar.update(r.done, { from });
  };
  return {
    update: show,
    finish(r) {
      show(r);
      bar.stop();
      out.write(`${line(r)}\n`);
    },
    // stop() of a bar not started, or already stopped, does nothing.
    close: () => bar.stop(),
  };
}
