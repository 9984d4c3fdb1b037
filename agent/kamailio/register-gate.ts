/**
 * Opens the include's REGISTER gate (READY_SHV, cfg-include.ts) once this Kamailio instance is
 * whole: reloaded if it needed it, and with the agent listening to evapi so no registrar event is
 * dropped. Set once per instance; a failed set is retried at the next check.
 */
import type { Logger } from "../ops/logger.js";
import { READY_SHV } from "./cfg-include-names.js";
import { sameInstance, type CoreRpc, type KamailioInstance } from "./core-rpc.js";

export interface RegisterGate {
  /** Sets the gate when `whole()` and the instance is not the one it was set for already. */
  openIfWhole(): Promise<void>;
}

export function createRegisterGate(deps: {
  core: Pick<CoreRpc, "setReady">;
  /** The instance seen last (instance-watch.ts). */
  instance: () => KamailioInstance | null;
  /** Nothing is due before REGISTERs may go through: no reload, a seeded journal, evapi listened to. */
  whole: () => boolean;
  log: Logger;
}): RegisterGate {
  const { log } = deps;
  let readyFor: KamailioInstance | null = null;
  let gateWarnedFor: KamailioInstance | null = null;
  return {
    async openIfWhole() {
      const inst = deps.instance();
      if (!deps.whole() || inst === null) return;
      if (readyFor !== null && sameInstance(readyFor, inst)) return;
      try {
        await deps.core.setReady(READY_SHV);
        readyFor = inst;
        log.info({ instance: inst }, "Kamailio is whole: REGISTERs are let through");
      } catch (err) {
        // Retried at the next check; until then (at most LOCMESH_READY_GRACE) REGISTERs get 503.
        if (gateWarnedFor === null || !sameInstance(gateWarnedFor, inst)) {
          gateWarnedFor = inst;
          log.warn({ err: (err as Error).message }, `could not set $shv(${READY_SHV}) in Kamailio; retrying at every check`);
        }
      }
    },
  };
}
