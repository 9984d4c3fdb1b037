/**
 * Which Kamailio is this, and does it hold the cluster's state? Each probe asks Kamailio which
 * instance runs (core-rpc.ts) and compares it with the instance last reloaded, kept on disk
 * (instance-memory.ts): the agent may have been down while Kamailio restarted, or stopped in the
 * middle of a reload, and without that memory every binding Kamailio lacks would look
 * de-registered. An instance that is not known whole needs a reload before anything else.
 */
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import { sameInstance, type CoreRpc, type KamailioInstance } from "./core-rpc.js";
import { createInstanceMemory } from "./instance-memory.js";

const RESTARTED = "kamailio restarted";
/** No record of an earlier instance (a new agent, or its data dir lost): not known to be a restart. */
export const FIRST_CONTACT = "first contact with this Kamailio";

export interface InstanceWatch {
  /** Asks Kamailio which instance runs and notes whether it needs a reload; throws when Kamailio does not answer. */
  observe(): Promise<void>;
  /** The instance seen last (null before the first answer). */
  current(): KamailioInstance | null;
  /** When the Kamailio last probed started, on this host's clock (its uptime has whole seconds). */
  startedMs(): number | null;
  /** A reload is due before anything else (the instance is not known whole). */
  reloadNeeded(): boolean;
  /** Why the due reload runs: a restart, or the agent's last run left one unfinished. */
  reloadReason(): string;
  /** A reload is due for `reason` whatever Kamailio answers (the agent's last run left one unfinished). */
  redo(reason: string): void;
  /** A reload into the current instance finished: it is whole, also after an agent restart. */
  reloaded(): void;
  /** Restarts noticed since start. */
  restarts(): number;
}

export function createInstanceWatch(deps: {
  core: Pick<CoreRpc, "instance">;
  /** Where the instance last reloaded is kept. */
  file: string;
  /** The instance a reload left unfinished by the agent's last run was writing into (reload-mark.ts). */
  unfinished: KamailioInstance | null;
  log: Logger;
  metrics: Metrics;
}): InstanceWatch {
  const { log, metrics } = deps;
  const instances = createInstanceMemory(deps.file);
  let startedMs: number | null = null;
  let restarts = 0;
  let reloadNeeded = false;
  let reloadReason = RESTARTED;

  return {
    async observe() {
      const inst = await deps.core.instance();
      startedMs = Date.now() - inst.uptimeSec * 1000;
      const previous = instances.current();
      const state = instances.observe(inst);
      if (state === "whole") return;
      reloadNeeded = true;
      if (previous !== null && sameInstance(previous, inst)) return; // noted already; the reload is due
      // The instance the agent's last run was reloading when it stopped: not a restart (redo() said so).
      const unfinished = deps.unfinished;
      if (previous === null && unfinished && sameInstance(unfinished, inst)) return;
      if (state === "first contact") {
        reloadReason = FIRST_CONTACT;
        log.info({ now: inst }, "first contact with this Kamailio; writing the live state into it");
        return;
      }
      reloadReason = RESTARTED;
      restarts++;
      metrics.kamailioRestarts.inc();
      log.warn({ previous, now: inst }, "Kamailio restarted (or a reload into it did not finish); putting its state back");
    },
    current: () => instances.current(),
    startedMs: () => startedMs,
    reloadNeeded: () => reloadNeeded,
    reloadReason: () => reloadReason,
    redo(reason) {
      reloadNeeded = true;
      reloadReason = reason;
    },
    reloaded() {
      reloadReason = RESTARTED;
      reloadNeeded = false;
      try {
        instances.whole();
      } catch (err) {
        // Only costs another full reload should the agent restart (e.g. a full disk).
        log.warn({ err: (err as Error).message }, "could not save which Kamailio instance this is");
      }
    },
    restarts: () => restarts,
  };
}
