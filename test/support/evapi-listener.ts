/**
 * locmesh's evapi client attached to a test Kamailio running the include, collecting the events it
 * parses: what an agent would receive. Connects from `localAddress` (the include's agentAddress).
 */
import { setTimeout as sleep } from "node:timers/promises";
import { READY_SHV } from "../../agent/kamailio/cfg-include-names.js";
import { createCoreRpc } from "../../agent/kamailio/core-rpc.js";
import { createEvapiClient, type EvapiClient } from "../../agent/kamailio/evapi-client.js";
import { createFifoClient } from "../../agent/kamailio/fifo-client.js";
import type { KamailioEvent } from "../../agent/kamailio/register-event.js";
import { silentLogger } from "../../agent/ops/logger.js";
import type { KamailioProcess } from "./kamailio-process.js";

export interface EvapiListener {
  client: EvapiClient;
  /** Events received and not yet taken by next(). */
  events: KamailioEvent[];
  /** Payloads it could not read that still gave a number or a register event's AoR (evapi-client.ts onUnreadable). */
  unreadable: { n: number | null; aor: string | null }[];
  /** Takes the first event that matches, waiting up to `ms`. */
  next<T extends KamailioEvent>(pred: (ev: KamailioEvent) => ev is T, ms?: number): Promise<T>;
}

/** What the agent does once a started Kamailio is whole and heard: lets REGISTERs through (READY_SHV). */
export async function openRegisterGate(kam: KamailioProcess): Promise<void> {
  const rpc = createFifoClient({ fifoPath: kam.fifoPath, replyDir: kam.replyDir, timeoutMs: 5000, log: silentLogger(), maxInFlight: 1, autoResync: false });
  try {
    await createCoreRpc({ rpc }).setReady(READY_SHV);
  } finally {
    await rpc.close();
  }
}

/** Connects like the agent does, then opens the include's REGISTER gate as the agent would. */
export async function listenToEvapi(kam: KamailioProcess, localAddress: string): Promise<EvapiListener> {
  const events: KamailioEvent[] = [];
  const unreadable: EvapiListener["unreadable"] = [];
  const client = createEvapiClient({
    host: "127.0.0.1", port: kam.evapiPort as number, localAddress, log: silentLogger(), onEvent: (ev) => events.push(ev), retry: { minMs: 50, maxMs: 200 },
    onUnreadable: (n, aor) => unreadable.push({ n, aor }),
  });
  client.start();
  const deadline = Date.now() + 5000;
  while (!client.connected()) {
    if (Date.now() > deadline) {
      await client.close();
      throw new Error(`evapi client did not connect\n${kam.logTail(20)}`);
    }
    await sleep(20);
  }
  await sleep(100); // the connection-new event route runs after accept
  await openRegisterGate(kam);
  return {
    client,
    events,
    unreadable,
    async next<T extends KamailioEvent>(pred: (ev: KamailioEvent) => ev is T, ms = 5000): Promise<T> {
      const until = Date.now() + ms;
      for (;;) {
        const i = events.findIndex(pred);
        if (i >= 0) return events.splice(i, 1)[0] as T;
        if (Date.now() > until) throw new Error(`no matching event within ${ms} ms; have ${JSON.stringify(events)}\n${kam.logTail(20)}`);
        await sleep(20);
      }
    },
  };
}
