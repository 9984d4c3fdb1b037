/**
 * Kamailio core RPCs the agent needs: the version, and which Kamailio instance is running, so a
 * restart is noticed. With usrloc db_mode 0 a restart empties the location table, and nothing in
 * Kamailio says so: the agent must notice and push its bindings again.
 *
 * Kamailio 5.6 has no RPC that returns a boot id. Identity here is the main (attendant) process's
 * PID from `core.psx` (entry IDX 0) plus `core.uptime`'s `up_since`, the start time as Kamailio
 * prints it (ctime, local time, whole seconds). `up_since` alone would miss a restart within the
 * same second; the PID alone could in theory be reused. `core.info` has no PID or start time, and
 * `core.runinfo`'s `time_started` is the same string as `up_since`.
 */
import type { KamailioRpc } from "./jsonrpcs-wire.js";
import { KamailioProtocolError } from "./jsonrpcs-wire.js";

export interface KamailioInstance {
  /** PID of Kamailio's main process. */
  mainPid: number;
  /** `core.uptime` `up_since`, e.g. "Sun Nov 22 00:24:14 2026": opaque, compared as is. */
  upSince: string;
  /** Seconds since start, as Kamailio reported it. */
  uptimeSec: number;
}

export interface CoreRpc {
  /** `core.version`, e.g. "kamailio 5.6.3 (x86_64/linux)". */
  coreVersion(): Promise<string>;
  instance(): Promise<KamailioInstance>;
  /** Sets the include's shared variable (READY_SHV) that lets REGISTERs through after a start. */
  setReady(name: string): Promise<void>;
  /** `pv.shvGet`: a shared variable's value. KamailioRpcError 404 when the cfg defines no such variable. */
  getShv(name: string): Promise<string | number>;
  /** `pv.shvSet` of a string shared variable. KamailioRpcError 404 when the cfg defines no such variable. */
  setShvString(name: string, value: string): Promise<void>;
  /** `pv.shvSet` of an integer shared variable. */
  setShvInt(name: string, value: number): Promise<void>;
}

/**
 * `probeTimeoutMs` bounds `instance()`: a probe caught in flight when Kamailio stops never gets its
 * reply (the new Kamailio makes a new FIFO), and with the client's full timeout it held the restart
 * watch for 5 s (the reload bench saw the restart noticed 4.8 s late in 2 of 12 runs).
 */
export function createCoreRpc(deps: { rpc: KamailioRpc; probeTimeoutMs?: number }): CoreRpc {
  const { rpc } = deps;
  const probe = deps.probeTimeoutMs === undefined ? {} : { timeoutMs: deps.probeTimeoutMs };
  return {
    async coreVersion() {
      return String(await rpc.call<string>("core.version")).trim();
    },
    async instance() {
      const [ps, up] = await Promise.all([
        rpc.call<{ IDX: number; PID: number; DSC: string }[]>("core.psx", undefined, probe),
        rpc.call<{ up_since?: unknown; uptime?: unknown }>("core.uptime", undefined, probe),
      ]);
      const main = Array.isArray(ps) ? ps.find((p) => p.IDX === 0) : undefined;
      if (!main || typeof up?.up_since !== "string") throw new KamailioProtocolError("unexpected core.psx / core.uptime result");
      return { mainPid: main.PID, upSince: up.up_since, uptimeSec: Number(up.uptime) || 0 };
    },
    async setReady(name) {
      await rpc.call("pv.shvSet", [name, "int", 1]);
    },
    async getShv(name) {
      const r = await rpc.call<{ value?: unknown }>("pv.shvGet", [name]);
      if (typeof r?.value !== "string" && typeof r?.value !== "number") throw new KamailioProtocolError(`unexpected pv.shvGet result for ${name}`);
      return r.value;
    },
    async setShvString(name, value) {
      await rpc.call("pv.shvSet", [name, "str", value]);
    },
    async setShvInt(name, value) {
      await rpc.call("pv.shvSet", [name, "int", value]);
    },
  };
}

export function sameInstance(a: KamailioInstance, b: KamailioInstance): boolean {
  return a.mainPid === b.mainPid && a.upSince === b.upSince;
}

export interface RestartCheck {
  /** True when the instance differs from the one seen at the previous check. */
  restarted: boolean;
  instance: KamailioInstance;
  previous: KamailioInstance | null;
}

export interface RestartDetector {
  /** The first check only records the instance (restarted: false). Errors pass through. */
  check(): Promise<RestartCheck>;
}

export function createRestartDetector(deps: { core: CoreRpc }): RestartDetector {
  let known: KamailioInstance | null = null;
  return {
    async check() {
      const instance = await deps.core.instance();
      const previous = known;
      known = instance;
      return { restarted: previous !== null && !sameInstance(previous, instance), instance, previous };
    },
  };
}
