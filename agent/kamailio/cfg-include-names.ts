/**
 * The names the kamailio.cfg include (cfg-include.ts) shares with Kamailio and with the agent: its
 * shared variables ($shv), set or read over jsonrpcs, and its REGISTER queue.
 */

/** The shared variable the agent sets to 1 when a started Kamailio is whole (READY_GATE). */
export const READY_SHV = "locmesh_ready";
/**
 * The shared variable with one bit per evapi connection index that is the agent's event
 * connection (connectionRoute): the drain sends only while it is not 0.
 */
export const EVENTS_SHV = "locmesh_events";

/**
 * The bulk channel open in each evapi connection slot (cfg-include-evapi.ts): one entry per
 * connection index, `|`-separated, each the number the include gave that channel in its ready
 * answer ("chan"), or 0. An async task worker runs a batch frame only while its channel is still the
 * one in its slot, so batches queued for a channel the agent gave up never run after the agent
 * wrote them again through jsonrpcs.
 */
export const BULK_LIVE_SHV = "locmesh_bulk_live";

/**
 * What the drain has sent the agent and the agent has not yet journaled (registerRoute): each
 * event the drain relays gets the next number ($shv(RELAYED_SHV)) and its queue entry is kept in
 * UNACKED_QUEUE; the agent sets $shv(ACKED_SHV) to the last number up to which it has journaled
 * every event (pv.shvSet), and the drain then forgets those entries. When the agent's event
 * connection comes back ($shv(RESEND_SHV), set by connection-new), the drain queues the entries it
 * still keeps again: an agent killed with events read and not journaled, or still in the sockets,
 * gets them from Kamailio instead of leaving them to the reconcile.
 */
export const RELAYED_SHV = "locmesh_relayed";
export const ACKED_SHV = "locmesh_acked";
export const RESEND_SHV = "locmesh_resend";
export const UNACKED_QUEUE = "locmesh_unacked";
/** Most unacknowledged events kept (mqueue drops the oldest past it; those are left to the reconcile). */
export const UNACKED_SIZE = 10_000;
/**
 * Most events the drain sends ahead of the agent's acknowledgements while they come (below
 * UNACKED_SIZE, so that none is dropped from the kept queue); and after how many seconds without
 * one it sends on regardless, as before acknowledgements (a frozen agent, jsonrpcs failing).
 */
export const UNACKED_WINDOW = 8_000;
export const ACK_STALL_SEC = 3;

/** The shared-memory queue (mqueue) REGISTERs wait in for the drain process (registerRoute). */
export const LOCMESH_QUEUE = "locmesh";
/** Most entries the queue holds (mqueue drops its oldest past it), and where SIP workers start to wait. */
export const QUEUE_SIZE = 20_000;
export const QUEUE_HIGH = 5_000;
/**
 * The SIP source IPs of the other Kamailio nodes, comma-separated: only requests from them may use
 * route(LOCMESH_INBOUND). The include sets it at Kamailio's start; the agent keeps it current
 * (sip-peer-list.ts), so a node added to the cluster needs no Kamailio restart.
 */
export const PEERS_SHV = "locmesh_peers";
/** 1 when the include's list was given by hand (`kamailio-cfg --peers`): the agent then leaves it be. */
export const PEERS_FIXED_SHV = "locmesh_peers_fixed";
