/**
 * The kamailio.cfg of one demo node: a small registrar an operator would recognise (in-memory
 * usrloc, use_domain, no authentication because it listens on 127.0.0.1 only), with locmesh wired
 * in exactly as `locmesh kamailio-cfg --instructions` (kamailioIncludeInstructions) tells operators
 * to. Meant to be read: the demo's banner points at it.
 */
import { kamailioInclude, kamailioIncludeInstructions } from "../kamailio/cfg-include.js";

export interface DemoKamailioCfgParams {
  nodeId: string;
  /** Runtime dir (-Y): FIFO, reply FIFOs and pid file. Absolute. */
  dir: string;
  modulesDir: string;
  sipPort: number;
  /** jsonrpcs datagram socket on udp:127.0.0.1:<rpcPort>. */
  rpcPort: number;
  /** The SIP domain phones register in (alias=). */
  domain: string;
  /** Where the locmesh include is written. Absolute. */
  includePath: string;
}

/** The locmesh include for a demo node: evapi on 127.0.0.1, every other node also on 127.0.0.1. */
export function demoLocmeshInclude(evapiPort: number, includePath: string, bulkToken: string): string {
  return kamailioInclude({
    bulkToken,
    evapiListen: { host: "127.0.0.1", port: evapiPort },
    agentAddress: "127.0.0.1",
    aliasMode: "usrloc",
    // The other demo nodes send from 127.0.0.1. On one machine that also trusts local phones, which
    // is acceptable for a demo; a real cluster lists each node's own address.
    meshPeers: ["127.0.0.1"],
    includePath,
  });
}

export function demoKamailioCfg(p: DemoKamailioCfgParams): string {
  for (const [what, v] of [["dir", p.dir], ["modulesDir", p.modulesDir], ["includePath", p.includePath]] as const) {
    // A quote or backslash would end the cfg string early; Kamailio has no escape for them there.
    if (/["\\\n]/.test(v)) throw new Error(`the demo's ${what} ${JSON.stringify(v)} contains a quote, backslash or newline, which kamailio.cfg cannot hold; run the demo from another folder (--dir)`);
  }
  checkDemoDomain(p.domain);
  // The numbered steps are the operator instructions, checked against kamailioIncludeInstructions()
  // below so this file cannot drift from what operators are told.
  const cfg = `#!KAMAILIO
#
# Kamailio for locmesh demo node ${p.nodeId}, written by \`locmesh demo\` (rewritten on every run).
# A plain registrar: phones register as user@${p.domain}, bindings live in memory (usrloc
# db_mode 0), and the locmesh agent next to this Kamailio replicates them to the other nodes and
# writes theirs in here over jsonrpcs. No authentication: it listens on 127.0.0.1 only.
# The lines marked "locmesh" are the ones \`locmesh kamailio-cfg --instructions\` asks you to add.
#
# Started as: kamailio -DD -E -Y ${p.dir} -P ${p.dir}/kamailio.pid -f ${p.dir}/kamailio.cfg

####### Global parameters #########

debug=2
log_stderror=yes
fork=yes
children=2
auto_aliases=no

listen=udp:127.0.0.1:${p.sipPort}
listen=tcp:127.0.0.1:${p.sipPort}

# The domain the phones register in counts as this proxy's own (uri==myself).
alias="${p.domain}"

####### Modules ########

mpath="${p.modulesDir}/"

loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "jsonrpcs.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"

# ----- jsonrpcs: how the agent writes into this Kamailio (FIFO, and UDP datagrams for speed) -----
modparam("jsonrpcs", "transport", 6)
modparam("jsonrpcs", "pretty_format", 0)
modparam("jsonrpcs", "fifo_name", "${p.dir}/kamailio_rpc.fifo")
# Keep the trailing slash: Kamailio appends the reply FIFO's name to it as is.
modparam("jsonrpcs", "fifo_reply_dir", "${p.dir}/")
modparam("jsonrpcs", "fifo_mode", 0660)
modparam("jsonrpcs", "dgram_socket", "udp:127.0.0.1:${p.rpcPort}")
modparam("jsonrpcs", "dgram_workers", 2)

# ----- usrloc: memory only; after a restart the agent writes the cluster's bindings back -----
modparam("usrloc", "db_mode", 0)
modparam("usrloc", "use_domain", 1)
modparam("usrloc", "timer_interval", 10)

# ----- registrar -----
modparam("registrar", "max_expires", 3600)

####### locmesh ########

# locmesh 1: the include, after the loadmodule/modparam lines and before request_route.
#!include_file "${p.includePath}"

####### Routing ########

request_route {
	if (!mf_process_maxfwd_header("10")) {
		sl_send_reply("483", "Too Many Hops");
		exit;
	}

	# locmesh 2: delivers calls other nodes route to phones registered here.
	route(LOCMESH_INBOUND);

	if (is_method("CANCEL")) {
		if (t_check_trans()) {
			t_relay();
		}
		exit;
	}

	if (has_totag()) {
		route(WITHINDLG);
		exit;
	}

	if (is_method("REGISTER")) {
		route(REGISTRAR);
		exit;
	}

	if (uri == myself) {
		if (is_method("INVITE|SUBSCRIBE")) {
			record_route();
		}
		route(LOCATION);
		exit;
	}

	sl_send_reply("403", "Forbidden: this demo proxy serves ${p.domain} only");
}

route[REGISTRAR] {
	save("location");
	# locmesh 3: right after save(), before anything else changes $rc.
	$var(locmesh_rc) = $rc;
	$var(reg_rc) = $var(locmesh_rc);
	route(LOCMESH_REGISTER);
	xlog("L_INFO", "REGISTER $tu contact $ct from $proto:$si:$sp: save() returned $var(reg_rc)\\n");
}

route[LOCATION] {
	# locmesh 4: call-forward aliases first, then the phones' bindings (from any node).
	lookup("aliases");
	if (!lookup("location")) {
		sl_send_reply("404", "Not Found");
		exit;
	}
	if (!t_relay()) {
		sl_reply_error();
	}
}

route[WITHINDLG] {
	if (loose_route()) {
		if (!t_relay()) {
			sl_reply_error();
		}
		exit;
	}
	if (is_method("ACK")) {
		if (t_check_trans()) {
			t_relay();
		}
		exit;
	}
	sl_send_reply("404", "Not here");
}
`;
  assertFollowsInstructions(cfg, p.includePath);
  return cfg;
}

export function checkDemoDomain(domain: string): void {
  if (!/^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(domain)) throw new Error(`--domain must be a host name (letters, digits, '.', '-'), got ${JSON.stringify(domain)}`);
}

/** Every statement of the operator instructions appears in the cfg (lookup() may sit inside an if). */
function assertFollowsInstructions(cfg: string, includePath: string): void {
  const wanted = kamailioIncludeInstructions({ includePath, aliasMode: "usrloc" })
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && (!l.startsWith("#") || l.startsWith("#!")));
  const missing = wanted.filter((l) => !cfg.includes(l.replace(/;$/, "")));
  if (missing.length > 0) throw new Error(`demo kamailio.cfg no longer follows kamailioIncludeInstructions(); missing: ${missing.join(" | ")}`);
}
