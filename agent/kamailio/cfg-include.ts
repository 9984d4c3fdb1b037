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
 *   include loads pv, kex (pv_printf), xlog, textops (in_list), evapi, path, mqueue, rtimer and
 *   cfgutils only `#!ifndef MOD_<name>`, and must come after the operator's own loadmodule lines.
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
 * - `modparam("pv", "shvset", "name=s:")` (an empty string) is accepted, and commas in the value
 *   are kept. textops' `in_list("$si", "$shv(name)", ",")` compares whole items (127.0.0.10 does not
 *   match 127.0.0.1) and is false for an empty list. `pv.shvSet`/`pv.shvGet` of a name the cfg
 *   does not define answer 404 "Variable not found". (test/integration/kamailio-sip-peers.test.ts)
 */
import { isIP } from "node:net";
import {
  ACKED_SHV, BULK_LIVE_SHV, EVENTS_SHV, LOCMESH_QUEUE, PEERS_FIXED_SHV, PEERS_SHV, QUEUE_SIZE, READY_SHV, RELAYED_SHV, RESEND_SHV, UNACKED_QUEUE, UNACKED_SIZE,
} from "./cfg-include-names.js";
import { BULK_ASYNC_WORKERS, bulkLiveInitial, bulkRoute, connectionRoute } from "./cfg-include-evapi.js";
import { EXPIRED_ROUTES, registerRoute } from "./cfg-include-register.js";
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
   * make an open relay if anyone could use it. This is the list Kamailio starts with; the agent
   * replaces it over jsonrpcs with the one its config gives (sip-peer-list.ts). Empty: no node.
   */
  meshPeers?: string[];
  /**
   * The list was given by hand (`locmesh kamailio-cfg --peers`), not taken from the agent config:
   * an agent whose config does not set kamailio.sipPeers then leaves it as it is.
   */
  peersFixed?: boolean;
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

/** Modules the include uses but leaves to the operator's config (their parameters are the operator's). */
const REQUIRED_MODULES = ["tm", "sl", "rr", "usrloc", "registrar", "jsonrpcs"] as const;
/** Modules the include loads when the operator's config has not. */
const OWN_MODULES = ["pv", "kex", "xlog", "textops", "evapi", "path", "mqueue", "rtimer", "cfgutils"] as const;

export function kamailioInclude(p: IncludeParams): string {
  checkParams(p);
  const domain = p.usrlocDomain ?? "location";
  const slots = p.maxEvapiClients ?? 6;
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
    ...(p.bulkToken === undefined ? [] : [
      "#!ifndef MOD_async", `loadmodule "async.so"`, "#!endif",
      "# The agent's bulk writes (a reload) run on Kamailio's async task workers. If your cfg sets async_workers,",
      "# set it above this include and #!define LOCMESH_ASYNC_WORKERS_SET: Kamailio takes the first value given.",
      "#!ifndef LOCMESH_ASYNC_WORKERS_SET", `async_workers=${BULK_ASYNC_WORKERS}`, "#!endif",
    ]),
    "",
    `modparam("evapi", "bind_addr", "${evapiAddr}")`,
    `modparam("evapi", "netstring_format", 1)`,
    `modparam("evapi", "max_clients", ${slots})`,
    "# A Route URI's received= parameter (a phone behind NAT or on TCP) becomes $du in loose_route().",
    `modparam("path", "use_received", 1)`,
    ...(p.aliasMode === "usrloc" ? ["# locmesh writes call-forward aliases into usrloc's \"aliases\" domain.", `modparam("usrloc", "preload", "aliases")`] : []),
    "# 1 once the agent has restored this Kamailio after its start (set over jsonrpcs by the agent).",
    `modparam("pv", "shvset", "${READY_SHV}=i:0")`,
    "# One bit per evapi connection of the agent that carries registrar events (see connection-new).",
    `modparam("pv", "shvset", "${EVENTS_SHV}=i:0")`,
    "# The other nodes' SIP source IPs (route LOCMESH_INBOUND); the agent keeps the list current over jsonrpcs.",
    `modparam("pv", "shvset", "${PEERS_SHV}=s:${(p.meshPeers ?? []).join(",")}")`,
    `modparam("pv", "shvset", "${PEERS_FIXED_SHV}=i:${p.peersFixed ? 1 : 0}")`,
    ...(p.bulkToken === undefined ? [] : [
      "# The agent's bulk channel open in each evapi connection slot (the async workers check it before each write).",
      `modparam("pv", "shvset", "${BULK_LIVE_SHV}=s:${bulkLiveInitial(slots)}")`,
    ]),
    "# REGISTERs are handed over in shared memory and sent to the agent by one drain process.",
    `modparam("mqueue", "mqueue", "name=${LOCMESH_QUEUE};size=${QUEUE_SIZE}")`,
    "# What the drain sent and the agent has not acknowledged yet: sent again when its event connection comes back.",
    `modparam("mqueue", "mqueue", "name=${UNACKED_QUEUE};size=${UNACKED_SIZE}")`,
    `modparam("pv", "shvset", "${RELAYED_SHV}=i:0")`,
    `modparam("pv", "shvset", "${ACKED_SHV}=i:0")`,
    `modparam("pv", "shvset", "${RESEND_SHV}=i:0")`,
    `modparam("rtimer", "timer", "name=${LOCMESH_QUEUE};interval=5000u;mode=1;")`,
    `modparam("rtimer", "exec", "timer=${LOCMESH_QUEUE};route=LOCMESH_DRAIN")`,
    "#!ifndef LOCMESH_READY_GRACE",
    "#!define LOCMESH_READY_GRACE 60",
    "#!endif",
    "",
    startCheck(domain),
    registerRoute(domain),
    EXPIRED_ROUTES,
    connectionRoute(p.agentAddress, p.bulkToken !== undefined),
    bulkRoute(p.bulkToken ?? null, slots),
    INBOUND_ROUTE,
  ].join("\n");
}

/** The lines the operator adds to their own kamailio.cfg, as text to print. */
export function kamailioIncludeInstructions(p: Pick<IncludeParams, "includePath" | "aliasMode"> = { aliasMode: "usrloc" }): string {
  const path = p.includePath ?? DEFAULT_INCLUDE_PATH;
  return [
    `# 1. After your loadmodule/modparam lines (tm, sl, rr, usrloc, registrar and jsonrpcs must be loaded above,`,
    `#    with modparam("usrloc", "use_domain", 1) and the registrar's case_sensitive at 0, its default: locmesh`,
    `#    keys bindings user@domain, lower-cased, and Kamailio with the include stops at its start otherwise),`,
    `#    before request_route. If you already have an event_route[usrloc:contact-expired], first add "#!define LOCMESH_OWN_EXPIRED_ROUTE" and call`,
    `#    route(LOCMESH_EXPIRED); inside your own; the same for event_route[core:worker-one-init] with`,
    `#    "#!define LOCMESH_OWN_WORKER_INIT_ROUTE" and route(LOCMESH_CHECK_USRLOC);.`,
    `#    An include generated with --config sets async_workers=2 (the agent's bulk writes run there): if you`,
    `#    set async_workers yourself, do it above the include and add "#!define LOCMESH_ASYNC_WORKERS_SET".`,
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
 * Why a Kamailio whose registrar keeps AoRs' case (case_sensitive 1) is stopped: locmesh folds AoRs
 * as Kamailio does with 0, so two users this Kamailio keeps apart are one to the cluster.
 * `$sel(cfg_get.registrar.case_sensitive)` reads the registrar's setting (0 or 1; verified on 5.6.3).
 */
export const CASE_SENSITIVE_PROBLEM = 'the registrar\'s case_sensitive is 1, and locmesh lower-cases AoRs as Kamailio does with 0: ' +
  "Alice@example.com and alice@example.com would be two users here and one to every other node, so a call for one could reach the other's phone there; " +
  'set modparam("registrar", "case_sensitive", 0) (the default) in kamailio.cfg and restart Kamailio';

/**
 * Stops a Kamailio whose usrloc keys AoRs without their domain (use_domain 0, Kamailio's default),
 * or whose registrar keeps their case (CASE_SENSITIVE_PROBLEM), as it starts, saying what to set.
 * locmesh keys every binding user@domain, and against a Kamailio with use_domain 0 nothing matches
 * (usrloc-keys.ts, where the agent refuses to attach to one it finds running). Its test is the agent's own: only use_domain 1 refuses a lookup of an AoR without '@'
 * ("Domain missing in AOR"); with 0 it is looked up ("AOR not found", or found). Any other answer
 * (the domain not registered) lets Kamailio start. An operator with their own
 * event_route[core:worker-one-init] defines LOCMESH_OWN_WORKER_INIT_ROUTE and calls the route
 * from theirs (two such routes are a "duplicate route" error, as for the expired route).
 */
function startCheck(domain: string): string {
  const probe = JSON.stringify({ jsonrpc: "2.0", method: "ul.lookup", params: [domain, USE_DOMAIN_PROBE], id: 1 });
  return `# locmesh keys bindings user@domain, and usrloc must too: modparam("usrloc", "use_domain", 1).
# The registrar must lower-case AoRs as locmesh does: modparam("registrar", "case_sensitive", 0), the default.
# Both checked as Kamailio starts (event_route[core:worker-one-init] below): otherwise Kamailio stops.
route[LOCMESH_CHECK_USRLOC] {
	jsonrpc_exec('${probe}');
	if ($jsonrpl(code) == 200 || $jsonrpl(body) =~ "AOR not found" || $jsonrpl(body) =~ "AOR has no contacts") {
		xlog("L_CRIT", "locmesh: Kamailio's usrloc keys AoRs without their domain (use_domain is 0, Kamailio's default) and locmesh keys them user@domain: ${USE_DOMAIN_FIX.replace(/"/g, '\\"')}. Kamailio stops now.\\n");
		drop;
	}
	if ($sel(cfg_get.registrar.case_sensitive) != 0) {
		xlog("L_CRIT", "locmesh: ${CASE_SENSITIVE_PROBLEM.replace(/"/g, '\\"')}. Kamailio stops now.\\n");
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
 * Another node found a phone registered here and sent the initial request with a Route to this
 * node, whose received= parameter (added by the agent from the phone's source) names the phone's
 * NAT binding or TCP connection. loose_route() consumes that Route and the path module turns
 * received= into $du; t_relay() then reuses the phone's connection. Only the nodes in
 * $shv(locmesh_peers) may (textops' in_list compares whole items: 127.0.0.1 is not 127.0.0.10).
 */
const INBOUND_ROUTE = `# Call early in request_route, before any remove_hf("Route"). Only initial requests from other
# locmesh nodes (the IPs in $shv(${PEERS_SHV})) that carry a Route header are handled (and end
# here); all others return. It also answers REGISTER with 503 while a freshly started Kamailio is
# not yet whole (below).
route[LOCMESH_INBOUND] {
${READY_GATE}	if ($tt != $null || $hdr(Route) == $null) return;
	if (!in_list("$si", "$shv(${PEERS_SHV})", ",")) return;
	if ($rm == "ACK") return;
	loose_route();
	if ($rm == "INVITE" || $rm == "SUBSCRIBE") record_route();
	if (!t_relay()) {
		sl_reply_error();
	}
	exit;
}
`;
