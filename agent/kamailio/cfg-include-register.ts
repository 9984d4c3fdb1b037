/**
 * The include's registrar half (cfg-include.ts): route(LOCMESH_REGISTER) after save(), the queue and
 * its drain that send each REGISTER to the agent over evapi with the AoR's contacts, and the
 * expired-contact event.
 */
import {
  ACK_STALL_SEC, ACKED_SHV, EVENTS_SHV, LOCMESH_QUEUE, QUEUE_HIGH, RELAYED_SHV, RESEND_SHV, UNACKED_QUEUE, UNACKED_WINDOW,
} from "./cfg-include-names.js";
import { EVENT_FORMAT } from "./event-format2.js";
import { EVENT_NUMBER_MAX } from "./register-event.js";

/**
 * One event per REGISTER: the request, and the AoR's whole state (kamailio-5.6.md §8), in event
 * format 2 (event-format2.ts). It is built in two halves, so that the SIP worker does as little as
 * it can after save():
 *
 * - The SIP worker prints the request's fields (a JSON fragment) and queues it in shared memory
 *   (mqueue, keyed by the AoR). A request too big for pv_printf's buffer (8 KB) is sent whole from
 *   the worker as before. While the agent is behind, evapi blocks the drain, the queue grows, and
 *   past QUEUE_HIGH entries the SIP workers wait (10 ms at a time, 1 s at most) before they queue:
 *   Kamailio takes REGISTERs at the pace the agent journals them, as when the worker itself waited
 *   in evapi_relay. They wait only while the agent's event connection is open ($shv(locmesh_events),
 *   connectionRoute): with no agent the queue is held, not drained, and waiting for a drain that
 *   does not come would cost every REGISTER the whole second.
 * - One rtimer process drains the queue every 5 ms, in order: it reads the AoR's contacts back
 *   (reg_fetch_contacts) and relays the whole event. An AoR with one contact (the common case) is
 *   printed straight into evapi_relay's format; with several, each contact is printed with
 *   pv_printf and appended with `+` (no size limit).
 * - The drain fetches nothing while no event connection is open: evapi drops what it relays to no
 *   client (kamailio-5.6.md §6), so the REGISTERs taken while the agent is away wait in the queue
 *   (QUEUE_SIZE at most; mqueue then drops its oldest, silently) and reach the agent once it
 *   connects, read back at that time. Only what went beyond the queue is left to the reconcile.
 * - The drain numbers each event it sends ("n") and keeps its queue entry in UNACKED_QUEUE until
 *   the agent acknowledges it (event-acks.ts, $shv(ACKED_SHV)), sending at most UNACKED_WINDOW
 *   ahead of acknowledgements that come; when an agent connects it first sends again all it
 *   keeps, so an agent killed with events read and not journaled, or still in the sockets, misses
 *   none of them.
 *
 * The contact list is thus read up to the drain's interval after save(), and may already hold a
 * later REGISTER's change to the AoR (as it already could with two SIP workers); each event says
 * what usrloc held when it was read, and registrar-input.ts reads it that way.
 *
 * Measured with Kamailio 5.6.3 (issue 3, README "Kamailio benchmark"): format 1's ~25 jansson_set
 * calls added about 105 µs of Kamailio CPU to a REGISTER; building each contact with a `+` chain
 * instead of pv_printf took 2-5 times as long; the two `+` per contact in the SIP worker were the
 * hook's largest cost under qm; and relaying from the SIP worker cost Kamailio ~10 µs more per
 * REGISTER than queueing and relaying from the drain.
 * pv_printf's result is limited by the core's pv_buffer_size (8 KB): a contact at the column limits
 * is about 4.3 KB in hex. A contact that does not fit, or a loop cut short by max_while_loops
 * (default 100 contacts), leaves the list shorter than "count", and the agent refuses the event.
 */
export function registerRoute(domain: string): string {
  const hex = (pv: string): string => `"$(${pv}{s.encode.hexa})"`;
  const contact = (index: string): string => {
    const ulc = (f: string): string => `ulc(lmc=>${f})[${index}]`;
    return jsonFormat([
      ["addr", hex(ulc("addr"))], ["expires", `$(${ulc("expires")})`], ["q", `$(${ulc("q")})`], ["callid", hex(ulc("callid"))],
      ["cseq", `$(${ulc("cseq")})`], ["path", hex(ulc("path"))], ["received", hex(ulc("received"))], ["user_agent", hex(ulc("user_agent"))],
      ["ruid", hex(ulc("ruid"))], ["socket", hex(ulc("socket"))], ["instance", hex(ulc("instance"))], ["flags", `$(${ulc("flags")})`],
      ["cflags", `$(${ulc("cflags")})`], ["methods", `$(${ulc("methods")})`], ["regid", `$(${ulc("regid")})`],
      // usrloc's last_modified: registrar-input.ts does not learn back a contact removed after it.
      ["modified", `$(${ulc("modified")})`],
    ]);
  };
  // The request's half, printed by the SIP worker: `{` and `}` are added by the drain.
  const request = jsonFormat([
    ["rc", "$var(lm_rc)"], ["ts", '"$TV(Sn)"'], ["aor", hex("tu")],
    ["req_contact", hex("hdr(Contact)[*]")], ["req_expires", '"$(hdr(Expires){s.int})"'], ["callid", hex("ci")], ["cseq", '"$(cs{s.int})"'],
    ["user_agent", hex("ua")], ["source", '"$proto:$si:$sp"'],
  ]).slice(1, -1);
  // A drained event starts with its number ("n", first so that the agent finds it in one it cannot read).
  const sendEvent = (req: string, aor: string, numbered: boolean): string => {
    const event = (count: string, contacts: string): string =>
      `{${numbered ? '"n":$var(lm_num),' : ""}"v":${EVENT_FORMAT},"event":"register",${req},"count":${count},"contacts":[${contacts}]}`;
    return `	if (!reg_fetch_contacts("${domain}", "${aor}", "lmc")) {
		evapi_relay('${event("0", "")}');
		return;
	}
	$var(lm_n) = $(ulc(lmc=>count));
	# One contact (the common case): printed straight into the event, with no string building.
	if ($var(lm_n) == 1) {
		evapi_relay('${event("1", contact("0"))}');
		reg_free_contacts("lmc");
		return;
	}
	$var(lm_cs) = "";
	$var(lm_sep) = "";
	$var(lm_i) = 0;
	while ($var(lm_i) < $var(lm_n)) {
		if (pv_printf("$var(lm_c)", '${contact("$var(lm_i)")}')) {
			$var(lm_cs) = $var(lm_cs) + $var(lm_sep) + $var(lm_c);
			$var(lm_sep) = ",";
		}
		$var(lm_i) = $var(lm_i) + 1;
	}
	reg_free_contacts("lmc");
	evapi_relay('${event("$var(lm_n)", "$var(lm_cs)")}');
`;
  };
  return `# Call right after save("${domain}"...) with its return code in $var(locmesh_rc).
# Sent for rc 1 (inserted), 2 (updated), 3 (deleted) and 4 (query only: a fresh snapshot costs
# little and helps the agent reconcile); skipped for errors (rc < 0).
route[LOCMESH_REGISTER] {
	$var(lm_rc) = $var(locmesh_rc);
	# $var persists in the worker between messages: reset it so a missing assignment shows.
	$var(locmesh_rc) = 0;
	if ($var(lm_rc) == 0) {
		xlog("L_ERR", "locmesh: route(LOCMESH_REGISTER) called without setting var(locmesh_rc) to save()'s return code\\n");
		return;
	}
	if ($var(lm_rc) < 0) return;
	# The agent is behind: wait for the drain before queueing more (back-pressure, 1 s at most).
	# Not while no agent is connected: the queue is then held, and nothing would drain it.
	$var(lm_w) = 0;
	while ($shv(${EVENTS_SHV}) != 0 && $mq_size(${LOCMESH_QUEUE}) >= ${QUEUE_HIGH} && $var(lm_w) < 100) {
		usleep("10000");
		$var(lm_w) = $var(lm_w) + 1;
	}
	if (mq_add("${LOCMESH_QUEUE}", "$tu", '${request}')) return;
	# Too big for the queue's pv buffer. With the agent connected, send it from here, whole (evapi
	# would drop it with no agent); and queue what fits, numbered and kept like any drained event
	# (sent again should the agent die before it journals it): the AoR, whose contacts the drain
	# reads back, without the request's own headers.
	if ($shv(${EVENTS_SHV}) != 0) {
		route(LOCMESH_SEND_WHOLE);
	}
	mq_add("${LOCMESH_QUEUE}", "$tu", '${OVERSIZED_REQUEST}');
}

# A REGISTER too big for the queue, sent from the SIP worker (not numbered: not kept).
route[LOCMESH_SEND_WHOLE] {
${sendEvent(request, "$tu", false)}}

# The drain (rtimer, every 5 ms): every queued REGISTER, in order, with the AoR's contacts.
# While the agent's event connection is not open the queue is held (evapi would drop the events).
# Only this process touches ${UNACKED_QUEUE} and $shv(${RELAYED_SHV}), so they never race.
route[LOCMESH_DRAIN] {
	# An agent connected (connection-new): send again, first, all that was sent and is still kept.
	# All of it, without forgetting first: the new connection may already have acknowledged events
	# of its own, and the kept ones before them were never journaled. Each is read back and sent
	# under a new number, and kept again behind: the kept queue neither grows nor needs room in the
	# held one. Sent twice, an event changes nothing.
	if ($shv(${RESEND_SHV}) != 0) {
		$shv(${RESEND_SHV}) = 0;
		$var(lm_again) = $mq_size(${UNACKED_QUEUE});
		$shv(${ACKED_SHV}) = $shv(${RELAYED_SHV});
		# The new connection gets ${ACK_STALL_SEC} s to acknowledge before the window is lifted: sent
		# without one, the kept queue would drop its oldest, the events just sent again.
		$var(lm_acked_seen) = $shv(${ACKED_SHV});
		$var(lm_acked_at) = $TV(s);
		if ($var(lm_again) > 0) {
			xlog("L_INFO", "locmesh: $var(lm_again) registrar events the agent had not acknowledged are sent again\\n");
		}
	}
	if ($var(lm_again) > $mq_size(${UNACKED_QUEUE})) {
		$var(lm_again) = $mq_size(${UNACKED_QUEUE});
	}
	$var(lm_d) = 0;
	while ($var(lm_d) < 100 && $shv(${EVENTS_SHV}) != 0 && $var(lm_again) > 0) {
		$var(lm_e) = 0;
		while ($var(lm_e) < 100 && $shv(${EVENTS_SHV}) != 0 && $var(lm_again) > 0 && mq_fetch("${UNACKED_QUEUE}")) {
			$var(lm_again) = $var(lm_again) - 1;
			route(LOCMESH_EVENT_AGAIN);
			$var(lm_e) = $var(lm_e) + 1;
		}
		$var(lm_d) = $var(lm_d) + 1;
	}
	# Until those are all sent again the kept queue does not hold the last events sent in order.
	if ($var(lm_again) > 0) return;
	route(LOCMESH_FORGET);
	# While the agent acknowledges (its last acknowledgement moved within ${ACK_STALL_SEC} s), at most
	# ${UNACKED_WINDOW} events are sent and not acknowledged: all of them fit in ${UNACKED_QUEUE}, however
	# much the sockets would hold. An agent that stopped acknowledging (frozen, its jsonrpcs calls
	# failing, or one from before acknowledgements) is sent to as before, paced by TCP alone.
	if ($shv(${ACKED_SHV}) != $var(lm_acked_seen)) {
		$var(lm_acked_seen) = $shv(${ACKED_SHV});
		$var(lm_acked_at) = $TV(s);
	}
	$var(lm_window) = ${UNACKED_WINDOW};
	if ($TV(s) - $var(lm_acked_at) >= ${ACK_STALL_SEC}) {
		$var(lm_window) = ${NO_WINDOW};
	}
	$var(lm_d) = 0;
	while ($var(lm_d) < 100 && $shv(${EVENTS_SHV}) != 0 && $mq_size(${LOCMESH_QUEUE}) > 0 && $mq_size(${UNACKED_QUEUE}) < $var(lm_window)) {
		$var(lm_e) = 0;
		while ($var(lm_e) < 100 && $shv(${EVENTS_SHV}) != 0 && $mq_size(${UNACKED_QUEUE}) < $var(lm_window) && mq_fetch("${LOCMESH_QUEUE}")) {
			route(LOCMESH_EVENT);
			$var(lm_e) = $var(lm_e) + 1;
		}
		$var(lm_d) = $var(lm_d) + 1;
	}
}

# One drained REGISTER: $mqk is its AoR, $mqv the request's half of the event. It is numbered and
# kept until the agent acknowledges it (numbered and kept before it is relayed: a connection that
# closes meanwhile still finds it kept).
route[LOCMESH_EVENT] {
${numberAndKeep(LOCMESH_QUEUE)}
${sendEvent(`$mqv(${LOCMESH_QUEUE})`, `$mqk(${LOCMESH_QUEUE})`, true)}}

# A kept REGISTER sent again (LOCMESH_DRAIN), as LOCMESH_EVENT sends a queued one.
route[LOCMESH_EVENT_AGAIN] {
${numberAndKeep(UNACKED_QUEUE)}
${sendEvent(`$mqv(${UNACKED_QUEUE})`, `$mqk(${UNACKED_QUEUE})`, true)}}

# Forget what the agent has journaled: ${UNACKED_QUEUE} holds the last events relayed, in order, and
# the agent acknowledged every one up to $shv(${ACKED_SHV}). An acknowledgement above what was relayed
# (sent to a Kamailio that has restarted since) is not this Kamailio's: nothing is forgotten for it.
route[LOCMESH_FORGET] {
	if ($shv(${ACKED_SHV}) > $shv(${RELAYED_SHV})) return;
	$var(lm_f) = 0;
	while ($var(lm_f) < 100 && $mq_size(${UNACKED_QUEUE}) > $shv(${RELAYED_SHV}) - $shv(${ACKED_SHV})) {
		$var(lm_g) = 0;
		while ($var(lm_g) < 100 && $mq_size(${UNACKED_QUEUE}) > $shv(${RELAYED_SHV}) - $shv(${ACKED_SHV}) && mq_fetch("${UNACKED_QUEUE}")) {
			$var(lm_g) = $var(lm_g) + 1;
		}
		$var(lm_f) = $var(lm_f) + 1;
	}
}
`;
}

/** Cfg lines that give the fetched entry of `queue` the next number and keep it in UNACKED_QUEUE. */
function numberAndKeep(queue: string): string {
  return `	$var(lm_num) = $shv(${RELAYED_SHV}) + 1;
	# From 1 again well before cfg integers overflow (the agent reads 1..${EVENT_NUMBER_MAX}).
	if ($var(lm_num) > ${EVENT_NUMBER_MAX}) {
		$var(lm_num) = 1;
	}
	mq_add("${UNACKED_QUEUE}", "$mqk(${queue})", "$mqv(${queue})");
	$shv(${RELAYED_SHV}) = $var(lm_num);`;
}

/** The drain's window while acknowledgements do not come: none (the kept queue drops its oldest past UNACKED_SIZE). */
const NO_WINDOW = 1_000_000_000;

/**
 * The request's half of an event for a REGISTER too big for the queue (registerRoute): its AoR
 * and source, and no Contact, Call-ID or User-Agent, which is what made it too big. The agent
 * reads it as a query (rc 4: registrar-input.ts), learning the AoR's contacts as Kamailio holds
 * them when it is drained, and, since it does not say what the request removed, looks the AoR up
 * in Kamailio and brings the journal in line with it (aor-lookups.ts).
 */
const OVERSIZED_REQUEST = jsonFormat([
  ["rc", "4"], ["ts", '"$TV(Sn)"'], ["aor", '"$(tu{s.encode.hexa})"'], ["req_contact", '""'], ["req_expires", '""'], ["callid", '""'],
  ["cseq", '"$(cs{s.int})"'], ["user_agent", '""'], ["source", '"$proto:$si:$sp"'],
]).slice(1, -1);

/** A JSON object as a Kamailio format string: values are format text printing JSON (see above). */
function jsonFormat(fields: [string, string][]): string {
  return `{${fields.map(([k, v]) => `"${k}":${v}`).join(",")}}`;
}

// usrloc runs this in its timer process, up to timer_interval seconds after the expiry (§8).
const EXPIRED_EVENT = jsonFormat([
  ["v", String(EVENT_FORMAT)], ["event", '"expired"'], ["ts", '"$TV(Sn)"'], ["aor", '"$(ulc(exp=>aor){s.encode.hexa})"'],
  ["addr", '"$(ulc(exp=>addr){s.encode.hexa})"'], ["ruid", '"$(ulc(exp=>ruid){s.encode.hexa})"'],
  ["callid", '"$(ulc(exp=>callid){s.encode.hexa})"'], ["expires", "$ulc(exp=>expires)"],
]);
export const EXPIRED_ROUTES = `# Call from event_route[usrloc:contact-expired] (the one below, or yours with LOCMESH_OWN_EXPIRED_ROUTE).
route[LOCMESH_EXPIRED] {
	evapi_relay('${EXPIRED_EVENT}');
}

#!ifndef LOCMESH_OWN_EXPIRED_ROUTE
event_route[usrloc:contact-expired] {
	route(LOCMESH_EXPIRED);
}
#!endif
`;
