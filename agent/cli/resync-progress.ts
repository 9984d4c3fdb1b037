/**
 * `locmesh resync`: starts a full resync on the agent and follows it through `cluster.status`
 * until it is done or failed, as a progress bar on a terminal and as plain lines otherwise (JSON
 * lines with --json) so logs and scripts get something readable.
 */
import { setTimeout as sleep } from "node:timers/promises";
import cliProgress from "cli-progress";
import { ApiMethod, type ClusterStatus, type ResyncStatus } from "../contract/protocol.js";
import type { ApiClient } from "./api-client.js";
import { cellText } from "./table.js";

export interface ResyncOptions {
  peer?: string;
  json: boolean;
  stdout: NodeJS.WritableStream;
  pollMs?: number;
  /** How long to wait for the agent to show the resync it accepted before giving up. */
  startTimeoutMs?: number;
}

interface ProgressView {
  update(r: ResyncStatus): void;
  finish(r: ResyncStatus): void;
}

/** Runs a resync to its end and returns the final status; the caller decides the exit code. */
export async function runResync(client: ApiClient, opts: ResyncOptions): Promise<ResyncStatus> {
  const pollMs = opts.pollMs ?? 250;
  const startTimeoutMs = opts.startTimeoutMs ?? 10_000;
  // The status keeps the previous run's result; a new startedAt (or seeing it run) tells ours apart.
  const before = (await client.call<ClusterStatus>(ApiMethod.ClusterStatus)).resync;
  await client.call(ApiMethod.ClusterResync, opts.peer === undefined ? {} : { peer: opts.peer });
  const view = createView(opts);
  const since = Date.now();
  let ours = false;
  for (;;) {
    const r = (await client.call<ClusterStatus>(ApiMethod.ClusterStatus)).resync;
    ours ||= r.state === "running" || r.startedAt !== before.startedAt;
    if (ours && (r.state === "done" || r.state === "failed")) {
      view.finish(r);
      return r;
    }
    if (ours) view.update(r);
    else if (Date.now() - since > startTimeoutMs) {
      throw new Error(`the agent accepted the resync but has not started it after ${startTimeoutMs / 1000} s; see the agent's log`);
    }
    await sleep(pollMs);
  }
}

function createView(opts: ResyncOptions): ProgressView {
  const tty = (opts.stdout as { isTTY?: boolean }).isTTY === true;
  if (opts.json) return lineView(opts.stdout, (r) => JSON.stringify(r));
  if (!tty) return lineView(opts.stdout, plainLine);
  return barView(opts.stdout);
}

function plainLine(r: ResyncStatus): string {
  const from = r.peer ? ` from ${cellText(r.peer)}` : "";
  if (r.state === "failed") return `resync${from} failed after ${r.received} changes`;
  if (r.state === "done") return `resync${from} done: ${r.received} changes received`;
  return `resync${from}: ${r.state}, ${r.received} of ~${r.expected} changes received`;
}

/** One line per change of state or count, at most one a second while running, plus the last. */
function lineView(out: NodeJS.WritableStream, render: (r: ResyncStatus) => string): ProgressView {
  let last = "";
  let lastAt = 0;
  const write = (r: ResyncStatus, force: boolean) => {
    const line = render(r);
    if (line === last || (!force && Date.now() - lastAt < 1000)) return;
    out.write(`${line}\n`);
    [last, lastAt] = [line, Date.now()];
  };
  return { update: (r) => write(r, false), finish: (r) => write(r, true) };
}

function barView(out: NodeJS.WritableStream): ProgressView {
  const bar = new cliProgress.SingleBar(
    {
      stream: out,
      format: "resync{from} [{bar}] {percentage}% | {value}/~{total} changes",
      // `expected` starts at 0 until the peer has estimated it; show an empty bar, not a full one.
      emptyOnZero: true,
      hideCursor: false,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  const show = (r: ResyncStatus) => {
    const from = r.peer ? ` from ${cellText(r.peer)}` : "";
    // `expected` is the peer's estimate and can fall behind what has already arrived.
    const total = Math.max(r.expected, r.received);
    if (!started) {
      bar.start(total, r.received, { from });
      started = true;
      return;
    }
    bar.setTotal(total);
    bar.update(r.received, { from });
  };
  return {
    update: show,
    finish(r) {
      show(r);
      bar.stop();
      out.write(`${plainLine(r)}\n`);
    },
  };
}
