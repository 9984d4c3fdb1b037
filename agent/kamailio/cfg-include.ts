/**
 * The kamailio.cfg include that connects an existing Kamailio 5.6 config to locmesh: evapi events
 * for every REGISTER and every expired contact, and Path-based delivery of calls that other nodes
 * route through this one. The operator adds a few lines to their own cfg
 * (kamailioIncludeInstructions); everything else lives in the generated file.
 *
 * Verified Kamailio 5.6.3 behaviour this relies on (kamailio-5.6.md, and checked by
 * test/integration/kamailio-events.test.ts):
 * - `loadmodule` of a module that is already loaded is a fatal cfg error ("attempting to load the
 *   same module twice"), but every loadmodule also defines `MOD_<name>` for the preprocessor. So the
 *   include loads pv, kex (pv_printf), xlog, evapi, path, mqueue, rtimer and cfgutils only
 *   `#!ifndef MOD_<name>`, and must come after the operator's own loadmodule lines.
 * - A module the include needs but must not load itself (tm, sl, rr, usrloc, registrar, jsonrpcs: the
 *   operator's config owns their parameters) is checked the same way; when it is missing the
 *   include loads a module whose file name says what is wrong, so `kamailio -c` fails with it.
 * - Two `event_route[usrloc:contact-expired]` blocks are a "duplicate route" error, hence the
 *   LOCMESH_OWN_EXPIRED_ROUTE switch.
 * - `modparam("usrloc","preload","aliases")` twice is accepted.
 * - evapi has no authentication (§6): event_route[evapi:connection-new] closes every client that
 *   is not the agent's address.
 * - In a format string (evapi_relay's and pv_printf's parameter) a $null PV prints "<null>", but
 *   one with a transformation that fails, as {s.encode.hexa} does on $null, prints nothing and
 *   logs nothing. pv_printf's result must be under pv_buffer_size (8192 bytes by default): a longer
 *   one fails and leaves the variable as it was. `+` and evapi_relay have no such limit (evapi's
 *   buffer grows). A while loop stops after max_while_loops (default 100) iterations with
 *   "runaway while" and the route goes on. (test/integration/kamailio-event-values.test.ts)
 * - `drop` in event_route[core:worker-one-init] (run once by the first SIP worker after its module
 *   init, before any SIP traffic) stops Kamailio: "exit due to 'drop' in event route", and the main
 *   process ends the others, the SIP workers at once; processes still starting may miss its
 *   SIGTERM, and then the main process exits after its shutdown timeout (60 s, measured), killing
 *   them. `jsonrpc_exec` works there, and `kamailio -c` does not run it.
 *   (test/integration/kamailio-use-domain.test.ts)
 */
import { isIP } from "node:net";
import { BULK_ACK, BULK_HELLO, BULK_METHODS, bulkRequestPrefix } from "./evapi-bulk.js";
import { EVENT_FORMAT } from "./event-format2.js";
import { USE_DOMAIN_FIX } from "./usrloc-keys.js";
import { USE_DOMAIN_PROBE } from "./usrloc-rpc.js";

export interface IncludeParams {
  /** evapi's bind_addr: where the agent connects. */
  evapiListen: { host: string; port: number };
  /** The only source IP allowed to stay connected to evapi (the agent's). */
  agentAddress: string;
  /** The usrloc domain REGISTERs are saved to. Only "location" is supported. */
  usrlocDomain?: "location";
  /** "usrloc": aliases live in usrloc's "aliases" domain (preloaded here); "dbaliases": alias_db. */
  aliasMode: "usrloc" | "dbaliases";
  /**
   * SIP source IPs of the other Kamailio nodes. Only requests from them may use
   * route(LOCMESH_INBOUND): it relays to whatever `received` the Route header names, which would
   * make an open relay if anyone could use it. Empty disables the route.
   */
  meshPeers?: string[];
  /**
   * evapi max_clients (default 6): the agent's event connection and its two bulk channels (during
   * a reload), plus room for reconnects racing the old sockets. At most 30.
   */
  maxEvapiClients?: number;
  /** Where the include will be installed; only used in the instructions. */
  includePath?: string;
  /**
   * The agent's evapi bulk-channel token (evapiBulkToken: derived from the cluster key and node id).
   * With it the include runs the agent's bulk writes (fast reload); without it, it ignores them
   * and the agent reloads over jsonrpcs.
   */
  bulkToken?: string;
}

export class CfgIncludeError extends Error {
  override readonly name = "CfgIncludeError";
}

export const DEFAULT_INCLUDE_PATH = "/etc/kamailio/locmesh.cfg";

/** The shared variable the agent sets to 1 when a started Kamailio is whole (READY_GATE). */
export const READY_SHV = "locmesh_ready";
/**
 * The shared variable with one bit per evapi connection index that is the agent's event
 * connection (connectionRoute): the drain sends only while it is not 0.
 */
export const EVENTS_SHV = "locmesh_events";

/** Modules the include uses but leaves to the operator's config (their parameters are the operator's). */
const REQUIRED_MODULES = ["tm", "sl", "rr", "usrloc", "registrar", "jsonrpcs"] as const;
/** Modules the include loads when the operator's config has not. */
const OWN_MODULES = ["pv", "kex", "xlog", "evapi", "path", "mqueue", "rtimer", "cfgutils"] as const;

/** The shared-memory queue (mqueue) REGISTERs wait in for the drain process (registerRoute). */
export const LOCMESH_QUEUE = "locmesh";
/** Most entries the queue holds (mqueue drops its oldest past it), and where SIP workers start to wait. */
const QUEUE_SIZE = 20_000;
const QUEUE_HIGH = 5_000;

export function kamailioInclude(p: IncludeParams): string {
  checkParams(p);
  const domain = p.usrlocDomain ?? "location";
  const evapiAddr = p.evapiListen.host.includes(":") ? `[${p.evapiListen.host}]:${p.evapiListen.port}` : `${p.evapiListen.host}:${p.evapiListen.port}`;
  return [
    "# locmesh kamailio.cfg include (generated by `locmesh kamailio-cfg`; regenerate, do not edit).",
    "# Include it AFTER your loadmodule/modparam lines and BEFORE request_route. See",
    "# `locmesh kamailio-cfg --instructions` for the lines to add to your own routes.",
    "",
    ...REQUIRED_MODULES.flatMap((m) => [`#!ifndef MOD_${m}`, `loadmodule "locmesh-needs-${m}.so-loaded-before-this-include"`, "#!endif"]),
    // evapi belongs to locmesh: the connection filter below closes every other client.
    "#!ifdef MOD_evapi",
    `loadmodule "locmesh-needs-evapi-for-itself-remove-your-evapi-loadmodule"`,
    "#!endif",
    ...OWN_MODULES.flatMap((m) => [`#!ifndef MOD_${m}`, `loadmodule "${m}.so"`, "#!endif"]),
    "",
    `modparam("evapi", "bind_addr", "${evapiAddr}")`,
    `modparam("evapi", "netstring_format", 1)`,
    `modparam("evapi", "max_clients", ${p.maxEvapiClients ?? 6})`,
    "# A Route URI's received= parameter (a phone behind NAT or on TCP) becomes $du in loose_route().",
    `modparam("path", "use_received", 1)`,
    ...(p.aliasMode === "usrloc" ? ["# locmesh writes call-forward aliases into usrloc's \"aliases\" domain.", `modparam("usrloc", "preload", "aliases")`] : []),
    "# 1 once the agent has restored this Kamailio after its start (set over jsonrpcs by the agent).",
    `modparam("pv", "shvset", "${READY_SHV}=i:0")`,
    "# One bit per evapi connection of the agent that carries registrar events (see connection-new).",
    `modparam("pv", "shvset", "${EVENTS_SHV}=i:0")`,
    "# REGISTERs are handed over in shared memory and sent to the agent by one drain process.",
    `modparam("mqueue", "mqueue", "name=${LOCMESH_QUEUE};size=${QUEUE_SIZE}")`,
    `modparam("rtimer", "timer", "name=${LOCMESH_QUEUE};interval=5000u;mode=1;")`,
    `modparam("rtimer", "exec", "timer=${LOCMESH_QUEUE};route=LOCMESH_DRAIN")`,
    "#!ifndef LOCMESH_READY_GRACE",
    "#!define LOCMESH_READY_GRACE 60",
    "#!endif",
    "",
    useDomainCheck(domain),
    registerRoute(domain),
    EXPIRED_ROUTES,
    connectionRoute(p.agentAddress),
    bulkRoute(p.bulkToken ?? null),
    inboundRoute(p.meshPeers ?? []),
  ].join("\n");
}

/** The lines the operator adds to their own kamailio.cfg, as text to print. */
export function kamailioIncludeInstructions(p: Pick<IncludeParams, "includePath" | "aliasMode"> = { aliasMode: "usrloc" }): string {
  const path = p.includePath ?? DEFAULT_INCLUDE_PATH;
  return [
    `# 1. After your loadmodule/modparam lines (tm, sl, rr, usrloc, registrar and jsonrpcs must be loaded above,`,
    `#    with modparam("usrloc", "use_domain", 1): locmesh keys bindings user@domain, and Kamailio with the`,
    `#    include stops at its start without it), before request_route. If you already have an`,
    `#    event_route[usrloc:contact-expired], first add "#!define LOCMESH_OWN_EXPIRED_ROUTE" and call`,
    `#    route(LOCMESH_EXPIRED); inside your own; the same for event_route[core:worker-one-init] with`,
    `#    "#!define LOCMESH_OWN_WORKER_INIT_ROUTE" and route(LOCMESH_CHECK_USRLOC);.`,
    `#!include_file "${path}"`,
    ``,
    `# 2. Early in request_route, after the max-forwards check and BEFORE any remove_hf("Route")`,
    `#    for preloaded routes: delivers calls other locmesh nodes route to phones registered here.`,
    `route(LOCMESH_INBOUND);`,
    ``,
    `# 3. Right after every save("location"...), before anything else changes $rc:`,
    `$var(locmesh_rc) = $rc;`,
    `route(LOCMESH_REGISTER);`,
    ...(p.aliasMode === "usrloc"
      ? [``, `# 4. Where you look up a called user: resolve locmesh's aliases first.`, `lookup("aliases");`, `lookup("location");`]
      : [``, `# 4. Where you look up a called user: resolve locmesh's aliases first.`, `alias_db_lookup("dbaliases");`, `lookup("location");`]),
    ``,
  ].join("\n");
}

function checkParams(p: IncludeParams): void {
  const problems: string[] = [];
  // Named after what the operator sets: `locmesh kamailio-cfg`'s flags and the agent config's keys.
  if (isIP(p.evapiListen.host) === 0) problems.push(`the evapi host ${JSON.stringify(p.evapiListen.host)} (--evapi, kamailio.evapi) must be an IP address`);
  if (!Number.isInteger(p.evapiListen.port) || p.evapiListen.port < 1 || p.evapiListen.port > 65535) problems.push(`the evapi port ${p.evapiListen.port} (--evapi, kamailio.evapi) must be 1..65535`);
  if (isIP(p.agentAddress) === 0) problems.push(`the agent address ${JSON.stringify(p.agentAddress)} (--agent-address) must be an IP address`);
  for (const peer of p.meshPeers ?? []) if (isIP(peer) === 0) problems.push(`the peer ${JSON.stringify(peer)} (--peers) must be an IP address`);
  if ((p.usrlocDomain ?? "location") !== "location") problems.push(`usrlocDomain must be "location"`);
  if (p.aliasMode !== "usrloc" && p.aliasMode !== "dbaliases") problems.push(`aliasMode must be "usrloc" or "dbaliases"`);
  if (p.bulkToken !== undefined && !/^[0-9a-f]{32}$/.test(p.bulkToken)) problems.push("bulkToken must be 32 hex digits (evapiBulkToken)");
  const max = p.maxEvapiClients ?? 6;
  // The include keeps one bit per connection index in a cfg int.
  if (!Number.isInteger(max) || max < 1 || max > 30) problems.push(`maxEvapiClients ${max} must be 1..30`);
  if (problems.length > 0) throw new CfgIncludeError(`cannot generate the kamailio.cfg include: ${problems.join("; ")}`);
}

/**
 * Stops a Kamailio whose usrloc keys AoRs without their domain (use_domain 0, Kamailio's default)
 * as it starts, saying what to set: locmesh keys every binding user@domain, and against such a
 * Kamailio nothing matches (usrloc-keys.ts, where the agent refuses to attach to one it finds
 * running). The test is the agent's own: only use_domain 1 refuses a lookup of an AoR without '@'
 * ("Domain missing in AOR"); with 0 it is looked up ("AOR not found", or found). Any other answer
 * (the domain not registered) lets Kamailio start. An operator with their own
 * event_route[core:worker-one-init] defines LOCMESH_OWN_WORKER_INIT_ROUTE and calls the route
 * from theirs (two such routes are a "duplicate route" error, as for the expired route).
 */
function useDomainCheck(domain: string): string {
  const probe = JSON.stringify({ jsonrpc: "2.0", method: "ul.lookup", params: [domain, USE_DOMAIN_PROBE], id: 1 });
  return `# locmesh keys bindings user@domain, and usrloc must too: modparam("usrloc", "use_domain", 1).
# Checked as Kamailio starts (event_route[core:worker-one-init] below): with 0, Kamailio stops.
route[LOCMESH_CHECK_USRLOC] {
	jsonrpc_exec('${probe}');
	if ($jsonrpl(code) == 200 || $jsonrpl(body) =~ "AOR not found" || $jsonrpl(body) =~ "AOR has no contacts") {
		xlog("L_CRIT", "locmesh: Kamailio's usrloc keys AoRs without their domain (use_domain is 0, Kamailio's default) and locmesh keys them user@domain: ${USE_DOMAIN_FIX.replace(/"/g, '\\"')}. Kamailio stops now.\\n");
		drop;
	}
}

#!ifndef LOCMESH_OWN_WORKER_INIT_ROUTE
event_route[core:worker-one-init] {
	route(LOCMESH_CHECK_USRLOC);
}
#!endif
`;
}

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
function registerRoute(domain: string): string {
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
  const event = (req: string, count: string, contacts: string): string =>
    `{"v":${EVENT_FORMAT},"event":"register",${req},"count":${count},"contacts":[${contacts}]}`;
  const sendEvent = (req: string, aor: string): string => `	if (!reg_fetch_contacts("${domain}", "${aor}", "lmc")) {
		evapi_relay('${event(req, "0", "")}');
		return;
	}
	$var(lm_n) = $(ulc(lmc=>count));
	# One contact (the common case): printed straight into the event, with no string building.
	if ($var(lm_n) == 1) {
		evapi_relay('${event(req, "1", contact("0"))}');
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
	evapi_relay('${event(req, "$var(lm_n)", "$var(lm_cs)")}');
`;
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
	# Too big for the queue's pv buffer: send it from here, whole.
${sendEvent(request, "$tu")}}

# The drain (rtimer, every 5 ms): every queued REGISTER, in order, with the AoR's contacts.
# While the agent's event connection is not open the queue is held (evapi would drop the events).
route[LOCMESH_DRAIN] {
	$var(lm_d) = 0;
	while ($var(lm_d) < 100 && $shv(${EVENTS_SHV}) != 0 && $mq_size(${LOCMESH_QUEUE}) > 0) {
		$var(lm_e) = 0;
		while ($var(lm_e) < 100 && $shv(${EVENTS_SHV}) != 0 && mq_fetch("${LOCMESH_QUEUE}")) {
			route(LOCMESH_EVENT);
			$var(lm_e) = $var(lm_e) + 1;
		}
		$var(lm_d) = $var(lm_d) + 1;
	}
}

# One drained REGISTER: $mqk is its AoR, $mqv the request's half of the event.
route[LOCMESH_EVENT] {
${sendEvent(`$mqv(${LOCMESH_QUEUE})`, `$mqk(${LOCMESH_QUEUE})`)}}
`;
}

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
const EXPIRED_ROUTES = `# Call from event_route[usrloc:contact-expired] (the one below, or yours with LOCMESH_OWN_EXPIRED_ROUTE).
route[LOCMESH_EXPIRED] {
	evapi_relay('${EXPIRED_EVENT}');
}

#!ifndef LOCMESH_OWN_EXPIRED_ROUTE
event_route[usrloc:contact-expired] {
	route(LOCMESH_EXPIRED);
}
#!endif
`;

/**
 * A Kamailio that (re)started holds nothing (db_mode 0) until the agent has put the cluster's
 * state back, and evapi drops the events of REGISTERs taken before the agent has connected. A
 * de-registration taken in that gap leaves no trace, and the reload would bring the binding back.
 * So REGISTERs get 503 until the agent sets $shv(locmesh_ready) (pv.shvSet) once it listens to
 * evapi and the reload is done; phones retry (RFC 3261 §21.5.4). LOCMESH_READY_GRACE bounds the
 * wait: past it (the agent is down) Kamailio registers on its own, as it would without locmesh.
 */
const READY_GATE = `	if ($shv(locmesh_ready) == 0 && $rm == "REGISTER" && $TV(s) - $Tb < LOCMESH_READY_GRACE) {
		sl_send_reply("503", "Restoring locations, retry shortly");
		exit;
	}
`;

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
 * frame (bulkRoute clears its bit), and events drained in that moment, while the bulk channel
 * is the only connection, are lost: the reconcile the agent runs when its event connection comes
 * up covers them.
 */
function connectionRoute(agent: string): string {
  return `# evapi has no authentication: only the locmesh agent may stay connected.
event_route[evapi:connection-new] {
	if ($evapi(srcaddr) != "${agent}") {
		xlog("L_WARN", "locmesh: closing evapi connection from $evapi(srcaddr):$evapi(srcport); only ${agent} may connect\\n");
		evapi_close();
		exit;
	}
	xlog("L_INFO", "locmesh: agent connected to evapi from $evapi(srcaddr):$evapi(srcport)\\n");
	# A new connection in the slot of a bulk channel is not a bulk channel.
	$var(lm_bulk) = $var(lm_bulk) & ~(1 << $evapi(conidx));
	# It carries events until it says something (bulkRoute): the drain may send.
	$shv(${EVENTS_SHV}) = $shv(${EVENTS_SHV}) | (1 << $evapi(conidx));
}

event_route[evapi:connection-closed] {
	$var(lm_bulk) = $var(lm_bulk) & ~(1 << $evapi(conidx));
	$shv(${EVENTS_SHV}) = $shv(${EVENTS_SHV}) & ~(1 << $evapi(conidx));
}
`;
}

/**
 * The agent's bulk channel (evapi-bulk.ts): after a hello with the token, the connection's frames
 * are usrloc writes run with jsonrpc_exec, each chunk followed by an ack frame that is echoed. evapi
 * runs all client messages in its one dispatcher process (5.6.3: its "workers" idle), which is also
 * where $var(lm_bulk) lives: one bit per connection index that said hello with the token (a channel
 * of an agent that restarted may still be open while the new one says hello). Only ul.add, ul.rm and ul.rm_contact
 * get through: the request must start with exactly those bytes, and Kamailio's JSON reader takes the
 * first "method" key. Answers go to this connection alone (evapi_unicast by its tag).
 */
function bulkRoute(token: string | null): string {
  const tag = '"locmesh-bulk-$evapi(conidx)"';
  const allowed = BULK_METHODS.map((m) => {
    const prefix = bulkRequestPrefix(m);
    return `$(evapi(msg){s.substr,0,${prefix.length}}) == '${prefix}'`;
  }).join(" || ");
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
				evapi_unicast('{"event":"locmesh-bulk-ready"}', ${tag});
			} else {
				xlog("L_WARN", "locmesh: evapi bulk hello with a wrong token from $evapi(srcaddr):$evapi(srcport)\\n");
				evapi_unicast('{"event":"locmesh-bulk-refused"}', ${tag});
			}
			exit;
		}
		xlog("L_WARN", "locmesh: evapi message ignored: the connection has not said hello\\n");
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
`;
}

/**
 * Another node found a phone registered here and sent the initial request with a Route to this
 * node, whose received= parameter (added by the agent from the phone's source) names the phone's
 * NAT binding or TCP connection. loose_route() consumes that Route and the path module turns
 * received= into $du; t_relay() then reuses the phone's connection.
 */
function inboundRoute(peers: string[]): string {
  const trusted = peers.map((ip) => `$si == "${ip}"`).join(" || ");
  const body = peers.length === 0
    ? `${READY_GATE}\t# No meshPeers were configured, so no request may be relayed on their behalf.\n\treturn;`
    : `${READY_GATE}	if ($tt != $null || $hdr(Route) == $null) return;
	if (!(${trusted})) return;
	if ($rm == "ACK") return;
	loose_route();
	if ($rm == "INVITE" || $rm == "SUBSCRIBE") record_route();
	if (!t_relay()) {
		sl_reply_error();
	}
	exit;`;
  return `# Call early in request_route, before any remove_hf("Route"). Only initial requests from other
# locmesh nodes that carry a Route header are handled (and end here); all others return.
# It also answers REGISTER with 503 while a freshly started Kamailio is not yet whole (below).
route[LOCMESH_INBOUND] {
${body}
}
`;
}
