/**
 * Keeps the running Kamailio's list of nodes that may relay calls to its phones ($shv(locmesh_peers),
 * the include's route(LOCMESH_INBOUND)) as the agent config says (sip-peers.ts): set over jsonrpcs
 * once per Kamailio instance (a started Kamailio has the include's list back) and again whenever
 * SIGHUP changes it. A node added to the cluster thus needs no Kamailio restart.
 *
 * Left as it is: a list the config does not give (hub mode without kamailio.sipPeers, host names in
 * mesh.peers), and one the include marks as given by hand (`kamailio-cfg --peers`) unless the config
 * sets kamailio.sipPeers. An include generated before this list existed has no such variable
 * (pv.shvSet answers 404): the agent says to regenerate it, once per instance.
 */
import type { SipPeersStatus } from "../contract/kamailio-status.js";
import type { Logger } from "../ops/logger.js";
import { PEERS_FIXED_SHV, PEERS_SHV } from "./cfg-include-names.js";
import { sameInstance, type CoreRpc, type KamailioInstance } from "./core-rpc.js";
import { KamailioRpcError } from "./jsonrpcs-wire.js";
import { sameSipPeers, type SipPeers } from "./sip-peers.js";

export interface SipPeerList {
  /** The config's list changed (SIGHUP): it is set at the next sync(). */
  want(next: SipPeers): void;
  /** Sets the list in the current instance unless it holds it already; errors are logged, and retried at the next sync. */
  sync(): Promise<void>;
  /** What the current instance holds, as far as the agent knows (`locmesh status`). */
  status(): SipPeersStatus;
}

export const OLD_INCLUDE =
  `this Kamailio's locmesh include has no $shv(${PEERS_SHV}): it predates the list of nodes the agent keeps current, so adding a node needs a new include and a Kamailio restart. ` +
  "Regenerate it (locmesh kamailio-cfg) and restart Kamailio once";

export function createSipPeerList(deps: {
  core: Pick<CoreRpc, "getShv" | "setShvString">;
  /** The instance seen last (instance-watch.ts). */
  instance: () => KamailioInstance | null;
  initial: SipPeers;
  log: Logger;
}): SipPeerList {
  const { core, log } = deps;
  let wanted = deps.initial;
  /** What this agent last settled for an instance: the list set, or that it is left be (and why). */
  let settled: { instance: KamailioInstance; peers: readonly string[] | null; left?: "fixed" | "old include" } | null = null;
  let lastError: string | null = null;
  let warnedFor: KamailioInstance | null = null;
  let unmanagedSaid = false;
  let queue: Promise<void> = Promise.resolve();

  const holds = (inst: KamailioInstance, peers: readonly string[] | null): boolean =>
    settled !== null && sameInstance(settled.instance, inst) &&
    (settled.peers === null || (peers !== null && sameSipPeers(settled.peers, peers)));

  async function leftByHand(inst: KamailioInstance): Promise<boolean> {
    if (wanted.peers === null || wanted.from === "kamailio.sipPeers") return false;
    if (Number(await core.getShv(PEERS_FIXED_SHV)) !== 1) return false;
    log.info({ current: await core.getShv(PEERS_SHV), instance: inst },
      "Kamailio's list of nodes that may relay calls to its phones was fixed with `locmesh kamailio-cfg --peers`: the agent leaves it as it is (set kamailio.sipPeers to have SIGHUP change it)");
    return true;
  }

  return {
    want(next) {
      wanted = next;
      unmanagedSaid = false;
      // The next sync compares against what was set; a list left be is looked at again.
      if (settled?.peers === null) settled = null;
    },
    status() {
      if (wanted.peers === null) return { state: "not managed", peers: null, note: wanted.why };
      const inst = deps.instance();
      const current = inst !== null && settled !== null && sameInstance(settled.instance, inst) ? settled : null;
      if (current?.left === "fixed") return { state: "fixed", peers: null, note: "given with `locmesh kamailio-cfg --peers`; set kamailio.sipPeers to have SIGHUP change it" };
      if (current?.left === "old include") return { state: "old include", peers: null, note: OLD_INCLUDE };
      if (current?.peers && sameSipPeers(current.peers, wanted.peers)) return { state: "set", peers: [...wanted.peers], note: null };
      return { state: "pending", peers: [...wanted.peers], note: lastError };
    },
    sync() {
      // One at a time: a SIGHUP's set must not be overtaken by an older one still in flight.
      queue = queue.then(syncNow, syncNow);
      return queue;
    },
  };

  async function syncNow(): Promise<void> {
    const inst = deps.instance();
    if (inst === null) return;
    if (wanted.peers === null) {
      if (!unmanagedSaid) log.info(`the agent leaves Kamailio's list of nodes that may relay calls to its phones as it is (the include's, or the last one this agent set): ${wanted.why}`);
      unmanagedSaid = true;
      return;
    }
    if (holds(inst, wanted.peers)) return;
    const peers = wanted.peers;
    try {
      if (await leftByHand(inst)) {
        settled = { instance: inst, peers: null, left: "fixed" };
        return;
      }
      await core.setShvString(PEERS_SHV, peers.join(","));
      settled = { instance: inst, peers };
      lastError = null;
      log.info({ peers, from: wanted.from }, `Kamailio lets these nodes relay calls to its phones: ${peers.join(", ") || "none"}`);
    } catch (err) {
      if (err instanceof KamailioRpcError && err.code === 404) {
        settled = { instance: inst, peers: null, left: "old include" };
        log.warn(OLD_INCLUDE);
        return;
      }
      lastError = (err as Error).message;
      if (warnedFor === null || !sameInstance(warnedFor, inst)) {
        warnedFor = inst;
        log.warn({ err: (err as Error).message }, `could not set $shv(${PEERS_SHV}) in Kamailio; retrying at every check`);
      }
    }
  }
}
