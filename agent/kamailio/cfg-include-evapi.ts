/**
 * The include's evapi half (cfg-include.ts): which connection is the agent's event connection, and
 * the bulk channel through which the agent refills a restarted Kamailio (evapi-bulk.ts).
 */
import { BULK_LIVE_SHV, EVENTS_SHV, RESEND_SHV } from "./cfg-include-names.js";
import { BULK_ACK, BULK_BATCH, BULK_CLOSE, BULK_HELLO, BULK_METHODS, bulkRequestPrefix } from "./evapi-bulk.js";

/**
 * Which evapi connections are the agent's event connection: $shv(locmesh_events), one bit per
 * connection index, shared memory so the drain (rtimer process) and the SIP workers can read it.
 * Only evapi's dispatcher process writes it (these routes and message-received all run there), so
 * its read-modify-write steps never race.
 *
 * The drain waits for the event connection, not for any agent connection: events go to every
 * client, but a bulk channel drops them (evapi-bulk.ts, "not for us"), so an agent whose bulk
 * channels are open and whose event connection is not (it is reconnecting, or a reload started
 * before it connected) would lose whatever the drain sent meanwhile. The include cannot tell the
 * two kinds apart until a connection speaks: the event connection never sends anything, a bulk
 * channel says its hello at once. So a connection counts from connect until it sends its first
 * frame (bulkRoute clears its bit). Events drained in that moment go to every connection; were
 * the bulk channel the only one, they would be lost, so the agent opens its bulk channels only
 * while its event connection is open (bulk-after-events.ts).
 */
export function connectionRoute(agent: string, bulk: boolean): string {
  // A closed connection's bulk channel is over: batches of it still queued for the async workers must not run.
  const closeChannel = bulk ? `\n${setSlotChannel("0", "\t")}` : "";
  return `# evapi has no authentication: only the locmesh agent may stay connected.
event_route[evapi:connection-new] {
	if ($evapi(srcaddr) != "${agent}") {
		xlog("L_WARN", "locmesh: closing evapi connection from $evapi(srcaddr):$evapi(srcport); only ${agent} may connect\\n");
		evapi_close();
		exit;
	}
	xlog("L_INFO", "locmesh: agent connected to evapi from $evapi(srcaddr):$evapi(srcport)\\n");
	# evapi keeps a slot's tag from its last connection: answers an async worker still had for a
	# bulk channel that closed must not reach a new connection that is not one (bulkRoute tags those).
	evapi_set_tag("locmesh-new");
	# A new connection in the slot of a bulk channel is not a bulk channel.
	$var(lm_bulk) = $var(lm_bulk) & ~(1 << $evapi(conidx));${closeChannel}
	# The agent connected: the drain sends again what it sent and the agent has not acknowledged
	# (registerRoute, LOCMESH_DRAIN). At every connection, not only when none was open: the old
	# connection's close may not have been seen yet, and a bulk channel's first moments look the same.
	$shv(${RESEND_SHV}) = 1;
	# It carries events until it says something (bulkRoute): the drain may send.
	$shv(${EVENTS_SHV}) = $shv(${EVENTS_SHV}) | (1 << $evapi(conidx));
}

event_route[evapi:connection-closed] {
	$var(lm_bulk) = $var(lm_bulk) & ~(1 << $evapi(conidx));${closeChannel}
	$shv(${EVENTS_SHV}) = $shv(${EVENTS_SHV}) & ~(1 << $evapi(conidx));
}
`;
}

/** Sets the entry $var(lm_slot) of $shv(BULK_LIVE_SHV) to $var(lm_to) (bulkLiveRoute). */
const BULK_LIVE_ROUTE = "LOCMESH_BULK_LIVE";

/** Cfg lines, each indented by `indent`, that record `to` (0: none) as the bulk channel of this event's evapi slot. */
function setSlotChannel(to: string, indent: string): string {
  return [`$var(lm_slot) = $evapi(conidx);`, `$var(lm_to) = ${to};`, `route(${BULK_LIVE_ROUTE});`].map((l) => indent + l).join("\n");
}

/** The route Kamailio's async task workers run a batch frame in. */
const BATCH_ROUTE = "LOCMESH_BULK_BATCH";
/** The async task workers' entry into BATCH_ROUTE (the task's data is the batch). */
const ASYNC_BATCH_ROUTE = "LOCMESH_BULK_ASYNC";
/**
 * The async task workers the include asks for (core async_workers) unless the operator's cfg
 * defines LOCMESH_ASYNC_WORKERS_SET: its own async_workers, above the include, then decides.
 */
export const BULK_ASYNC_WORKERS = 2;

/**
 * The agent's bulk channel (evapi-bulk.ts): after a hello with the token, the connection's frames
 * are usrloc writes run with jsonrpc_exec. evapi runs every client message in its one dispatcher
 * process (5.6.3: its "workers" only relay), which is also where $var(lm_bulk) lives: one bit per
 * connection index that said hello with the token (a channel of an agent that restarted may still
 * be open while the new one says hello). Two framings:
 * - batch (what the agent sends when the ready answer carries "batch"): one frame per chunk,
 *   `locmesh-batch:<conidx>:<seq>:<chan>` and then one request per line (an agent older than
 *   "chan" leaves it out, and its batches always run). The dispatcher only hands the
 *   frame to Kamailio's async task workers (async_task_data: a copy in shared memory and a
 *   datagram), so the chunks run on several processes at once (usrloc's slot locks keep them
 *   apart), in no particular order between chunks. Not when db_sqlite is loaded: usrloc on SQLite
 *   (db_mode 1 or 3) writes the file from the process that runs ul.add, and db_sqlite 5.6.3 sets
 *   no busy timeout, so a second writer fails at once; the dispatcher then runs the batches itself. The worker runs the chunk's requests in order,
 *   reports the ones that failed, and then acks the chunk (batchRoute). 5.6.3's
 *   async_task_group_data cannot be used: it leaves its third parameter unfixed (async_mod.c,
 *   fixup_async_task_route tests param_no 2 twice), so its data is garbage. A worker stops a
 *   batch whose channel closed (its chan no longer in $shv(BULK_LIVE_SHV) for its slot), without
 *   an ack: the agent has given those writes up and makes them again through jsonrpcs.
 * - single (an older agent): each request is a frame run in the dispatcher itself, each chunk
 *   followed by an ack frame that is echoed.
 * Only ul.add, ul.rm and ul.rm_contact get through: the request must start with exactly those
 * bytes, and Kamailio's JSON reader takes the first "method" key. Answers go to this connection
 * alone (evapi_unicast by its tag, which names the connection index; async workers relay through
 * the dispatcher, in their order).
 */
export function bulkRoute(token: string | null, slots: number): string {
  const tag = '"locmesh-bulk-$evapi(conidx)"';
  const allowed = allowedTest("evapi(msg)");
  // The agent's event connection never sends anything: one that does is not it (connectionRoute).
  const notEvents = `$shv(${EVENTS_SHV}) = $shv(${EVENTS_SHV}) & ~(1 << $evapi(conidx));`;
  const hello = token === null
    ? `	# No bulk token was given when this include was generated: the agent reloads over jsonrpcs.
	${notEvents}
	xlog("L_INFO", "locmesh: evapi message ignored (this include has no bulk token)\\n");`
    : `	if (($var(lm_bulk) & (1 << $evapi(conidx))) == 0) {
		${notEvents}
		if ($(evapi(msg){s.substr,0,${BULK_HELLO.length}}) == "${BULK_HELLO}") {
			evapi_set_tag(${tag});
			if ($evapi(msg) == "${BULK_HELLO}${token}") {
				$var(lm_bulk) = $var(lm_bulk) | (1 << $evapi(conidx));
				# A number no other channel had since Kamailio started: the agent puts it in its batch frames.
				$var(lm_chans) = $var(lm_chans) + 1;
${setSlotChannel("$var(lm_chans)", "\t\t\t\t")}
				evapi_unicast('{"event":"locmesh-bulk-ready","batch":$evapi(conidx),"chan":$var(lm_chans)}', ${tag});
			} else {
				xlog("L_WARN", "locmesh: evapi bulk hello with a wrong token from $evapi(srcaddr):$evapi(srcport)\\n");
				evapi_unicast('{"event":"locmesh-bulk-refused"}', ${tag});
			}
			exit;
		}
		xlog("L_WARN", "locmesh: evapi message ignored: the connection has not said hello\\n");
		exit;
	}
	if ($evapi(msg) == "${BULK_CLOSE}") {
		# The agent gives this channel up and will write what was not acked again through jsonrpcs: none
		# of its batches may run after this answer (the dispatcher has run every frame before it, and
		# the async workers check the channel before each request).
${setSlotChannel("0", "\t\t")}
		evapi_unicast('{"event":"locmesh-closed"}', ${tag});
		exit;
	}
	if ($(evapi(msg){s.substr,0,${BULK_BATCH.length}}) == "${BULK_BATCH}") {
#!ifdef MOD_db_sqlite
		# db_sqlite 5.6 sets no busy timeout: two processes writing one SQLite file at once fail
		# ("database is locked", ul.add "Can't insert contact"), so batches run here, one at a time.
		$var(lm_batch) = $evapi(msg);
		route(${BATCH_ROUTE});
#!else
		if (!async_task_data("${ASYNC_BATCH_ROUTE}", "$evapi(msg)")) {
			xlog("L_ERR", "locmesh: cannot hand an evapi bulk batch to the async task workers\\n");
			evapi_unicast('{"event":"locmesh-bulk-error","reply":null}', ${tag});
		}
#!endif
		exit;
	}
	if ($(evapi(msg){s.substr,0,${BULK_ACK.length}}) == "${BULK_ACK}") {
		evapi_unicast('{"event":"locmesh-ack","seq":$(evapi(msg){s.substr,${BULK_ACK.length},0}{s.int})}', ${tag});
		exit;
	}
	if (!(${allowed})) {
		xlog("L_WARN", "locmesh: evapi bulk request refused (only ${BULK_METHODS.join(", ")})\\n");
		evapi_unicast('{"event":"locmesh-bulk-error","reply":null}', ${tag});
		exit;
	}
	if (!jsonrpc_exec("$evapi(msg)")) {
		evapi_unicast('{"event":"locmesh-bulk-error","reply":null}', ${tag});
		exit;
	}
	if ($jsonrpl(code) != 200) {
		evapi_unicast('{"event":"locmesh-bulk-error","reply":$jsonrpl(body)}', ${tag});
	}`;
  return `# The agent's bulk writes (fast reload of a restarted Kamailio), run in evapi's dispatcher.
event_route[evapi:message-received] {
${hello}
}
${token === null ? "" : batchRoute() + bulkLiveRoute(slots)}`;
}

/** A cfg condition: the request in PV `pv` (without its $) starts as one of BULK_METHODS does. */
function allowedTest(pv: string): string {
  return BULK_METHODS.map((m) => {
    const prefix = bulkRequestPrefix(m);
    return `$(${pv}{s.substr,0,${prefix.length}}) == '${prefix}'`;
  }).join(" || ");
}

/**
 * What runs a batch frame (bulkRoute), in $var(lm_batch): an async task worker, or the dispatcher
 * itself when db_sqlite is loaded. Its first line names the channel (the connection index: the tag
 * to answer to) and the chunk's seq, every further line is one request. Failed requests are
 * reported as in the dispatcher, then the chunk is acked. line.at points into the batch without
 * copying it.
 */
function batchRoute(): string {
  const tag = '"locmesh-bulk-$var(lm_ci)"';
  return `
# The agent's batch frames, run by Kamailio's async task workers (or, with db_sqlite loaded, by
# evapi's dispatcher itself: bulkRoute).
# Answers carry the batch's seq; the ack says how many requests ran ("n"): a while loop stopped by
# max_while_loops goes on after the loop, and the agent must not take the rest for written.
route[${ASYNC_BATCH_ROUTE}] {
	$var(lm_batch) = $async(data);
	route(${BATCH_ROUTE});
}

route[${BATCH_ROUTE}] {
	$var(lm_head) = $(var(lm_batch){line.at,0});
	$var(lm_ci) = $(var(lm_head){s.select,1,:}{s.int});
	$var(lm_seq) = $(var(lm_head){s.select,2,:}{s.int});
	# The channel's number from its ready answer; 0 from an agent older than it.
	$var(lm_ch) = $(var(lm_head){s.select,3,:}{s.int});
	$var(lm_n) = $(var(lm_batch){line.count});
	$var(lm_i) = 1;
	while ($var(lm_i) < $var(lm_n)) {
		# The agent gave this channel up (it closed, and another may hold its slot now): it writes what
		# was not acked again through jsonrpcs, and a late write from here could undo a newer one.
		if ($var(lm_ch) != 0 && $(shv(${BULK_LIVE_SHV}){s.select,$var(lm_ci),|}{s.int}) != $var(lm_ch)) {
			$var(lm_left) = $var(lm_n) - $var(lm_i);
			xlog("L_INFO", "locmesh: dropped $var(lm_left) requests of batch $var(lm_seq): its evapi bulk channel has closed\\n");
			exit;
		}
		$var(lm_req) = $(var(lm_batch){line.at,$var(lm_i)});
		$var(lm_i) = $var(lm_i) + 1;
		if (!(${allowedTest("var(lm_req)")})) {
			xlog("L_WARN", "locmesh: evapi bulk request refused (only ${BULK_METHODS.join(", ")})\\n");
			evapi_unicast('{"event":"locmesh-bulk-error","seq":$var(lm_seq),"reply":null}', ${tag});
		} else if (!jsonrpc_exec("$var(lm_req)")) {
			evapi_unicast('{"event":"locmesh-bulk-error","seq":$var(lm_seq),"reply":null}', ${tag});
		} else if ($jsonrpl(code) != 200) {
			evapi_unicast('{"event":"locmesh-bulk-error","seq":$var(lm_seq),"reply":$jsonrpl(body)}', ${tag});
		}
	}
	$var(lm_ran) = $var(lm_i) - 1;
	evapi_unicast('{"event":"locmesh-ack","seq":$var(lm_seq),"n":$var(lm_ran)}', ${tag});
}
`;
}

/**
 * Sets one slot's entry of $shv(BULK_LIVE_SHV): `slots` entries (evapi's max_clients), `|`-separated,
 * rebuilt whole since a cfg script cannot change part of a string in place. Only evapi's dispatcher
 * runs it (on hello, connect and close), so its read-modify-write never races; the workers only read.
 */
function bulkLiveRoute(slots: number): string {
  return `
# Which bulk channel is open in each evapi slot, for the async workers (batchRoute).
route[${BULK_LIVE_ROUTE}] {
	$var(lm_k) = 0;
	$var(lm_list) = "";
	while ($var(lm_k) < ${slots}) {
		if ($var(lm_k) > 0) {
			$var(lm_list) = $var(lm_list) + "|";
		}
		if ($var(lm_k) == $var(lm_slot)) {
			$var(lm_list) = $var(lm_list) + $var(lm_to);
		} else {
			$var(lm_list) = $var(lm_list) + $(shv(${BULK_LIVE_SHV}){s.select,$var(lm_k),|}{s.int});
		}
		$var(lm_k) = $var(lm_k) + 1;
	}
	$shv(${BULK_LIVE_SHV}) = $var(lm_list);
}
`;
}

/** The initial value of $shv(BULK_LIVE_SHV): no channel in any of evapi's `slots`. */
export function bulkLiveInitial(slots: number): string {
  return Array.from({ length: slots }, () => "0").join("|");
}
