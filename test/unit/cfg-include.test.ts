import { describe, expect, it } from "vitest";
import { CfgIncludeError, kamailioInclude, kamailioIncludeInstructions, type IncludeParams } from "../../agent/kamailio/cfg-include.js";

const params: IncludeParams = { evapiListen: { host: "127.0.0.1", port: 8491 }, agentAddress: "127.0.0.1", aliasMode: "usrloc", meshPeers: ["10.0.0.2", "10.0.0.3"] };

describe("kamailioInclude", () => {
  const text = kamailioInclude(params);

  it("loads its own modules only when the operator's cfg has not, and checks the ones it needs", () => {
    for (const m of ["pv", "kex", "xlog", "evapi", "path", "mqueue", "rtimer", "cfgutils"]) expect(text).toContain(`#!ifndef MOD_${m}\nloadmodule "${m}.so"\n#!endif`);
    expect(text).not.toContain("jansson");
    for (const m of ["tm", "sl", "rr", "usrloc", "registrar", "jsonrpcs"]) {
      expect(text).toContain(`#!ifndef MOD_${m}\nloadmodule "locmesh-needs-${m}.so-loaded-before-this-include"`);
      expect(text).not.toContain(`loadmodule "${m}.so"`);
    }
  });

  it("sets up evapi, path and the aliases domain", () => {
    expect(text).toContain('modparam("evapi", "bind_addr", "127.0.0.1:8491")');
    expect(text).toContain('modparam("evapi", "netstring_format", 1)');
    expect(text).toContain('modparam("evapi", "max_clients", 6)');
    expect(text).toContain('modparam("path", "use_received", 1)');
    expect(text).toContain('modparam("usrloc", "preload", "aliases")');
    expect(kamailioInclude({ ...params, aliasMode: "dbaliases" })).not.toContain('"preload"');
    expect(kamailioInclude({ ...params, evapiListen: { host: "::1", port: 9 } })).toContain('"bind_addr", "[::1]:9"');
  });

  it("defines the routes, the guarded expired event_route and the connection filter", () => {
    for (const r of ["route[LOCMESH_REGISTER]", "route[LOCMESH_EXPIRED]", "route[LOCMESH_INBOUND]", "event_route[evapi:connection-new]"]) expect(text).toContain(r);
    expect(text).toMatch(/#!ifndef LOCMESH_OWN_EXPIRED_ROUTE\nevent_route\[usrloc:contact-expired\] \{\n\troute\(LOCMESH_EXPIRED\);\n\}\n#!endif/);
    expect(text).toContain('if ($evapi(srcaddr) != "127.0.0.1") {');
    expect(text).toContain("evapi_close();");
    expect(text).toContain('reg_fetch_contacts("location", "$tu", "lmc")');
    expect(text).toContain('modparam("pv", "shvset", "locmesh_peers=s:10.0.0.2,10.0.0.3")');
    expect(text).toContain('if (!in_list("$si", "$shv(locmesh_peers)", ",")) return;');
    // Event format 2 (event-format2.ts): strings hex-encoded, usrloc's numbers bare.
    // Every contact field, in the loop (index $var(lm_i)) and in the one-contact event (index 0).
    for (const index of ["$var(lm_i)", "0"]) {
      for (const f of ["addr", "callid", "path", "received", "user_agent", "ruid", "socket", "instance"]) expect(text).toContain(`"${f}":"$(ulc(lmc=>${f})[${index}]{s.encode.hexa})"`);
      for (const f of ["expires", "q", "cseq", "flags", "cflags", "methods", "regid", "modified"]) expect(text).toContain(`"${f}":$(ulc(lmc=>${f})[${index}])`);
    }
    expect(text).toContain(`evapi_relay('{"v":2,"event":"register","rc":$var(lm_rc),`);
    expect(text).toContain('"count":$var(lm_n),"contacts":[$var(lm_cs)]}\');');
    expect(text).toContain('"count":1,"contacts":[{"addr":"$(ulc(lmc=>addr)[0]{s.encode.hexa})"');
    // The SIP worker queues the request's half; the drain (rtimer) adds the contacts and relays it.
    expect(text).toContain('modparam("mqueue", "mqueue", "name=locmesh;size=20000")');
    expect(text).toContain('modparam("rtimer", "exec", "timer=locmesh;route=LOCMESH_DRAIN")');
    expect(text).toContain(`if (mq_add("locmesh", "$tu", '"rc":$var(lm_rc),"ts":"$TV(Sn)","aor":"$(tu{s.encode.hexa})",`);
    // Back-pressure only while the agent's event connection is open: without one nothing drains.
    expect(text).toContain("while ($shv(locmesh_events) != 0 && $mq_size(locmesh) >= 5000 && $var(lm_w) < 100) {");
    expect(text).toContain('reg_fetch_contacts("location", "$mqk(locmesh)", "lmc")');
    expect(text).toContain(`evapi_relay('{"n":$var(lm_num),"v":2,"event":"register",$mqv(locmesh),"count":1,"contacts":[{`);
    // Each drained event is numbered and kept until the agent acknowledges it; kept before it is relayed.
    const event = text.split("route[LOCMESH_EVENT] {")[1]?.split("\n}\n")[0] ?? "";
    const keep = event.indexOf('mq_add("locmesh_unacked", "$mqk(locmesh)", "$mqv(locmesh)");');
    expect(keep).toBeGreaterThan(0);
    expect(event.indexOf("$shv(locmesh_relayed) = $var(lm_num);")).toBeGreaterThan(keep);
    expect(event.indexOf("evapi_relay(")).toBeGreaterThan(event.indexOf("$shv(locmesh_relayed) = $var(lm_num);"));
    expect(text).toContain('modparam("mqueue", "mqueue", "name=locmesh_unacked;size=10000")');
    for (const v of ["locmesh_relayed", "locmesh_acked", "locmesh_resend"]) expect(text).toContain(`modparam("pv", "shvset", "${v}=i:0")`);
    // The drain forgets what is acknowledged, never for an acknowledgement above what it relayed.
    const forget = text.split("route[LOCMESH_FORGET] {")[1]?.split("\n}\n")[0] ?? "";
    expect(forget).toContain("if ($shv(locmesh_acked) > $shv(locmesh_relayed)) return;");
    expect(forget).toContain("$mq_size(locmesh_unacked) > $shv(locmesh_relayed) - $shv(locmesh_acked) && mq_fetch(\"locmesh_unacked\")");
    // Every agent connection (after the address check) sets the drain resending what it kept.
    const connect = text.split("event_route[evapi:connection-new] {")[1]?.split("\n}\n")[0] ?? "";
    expect(connect.indexOf("\t$shv(locmesh_resend) = 1;\n")).toBeGreaterThan(connect.indexOf("evapi_close();"));
    // First all it kept, without forgetting first, each numbered and kept again behind; the main queue waits for them.
    const drain0 = text.split("route[LOCMESH_DRAIN] {")[1]?.split("\n}\n")[0] ?? "";
    const again = drain0.indexOf('while ($var(lm_e) < 100 && $shv(locmesh_events) != 0 && $var(lm_again) > 0 && mq_fetch("locmesh_unacked")) {');
    expect(again).toBeGreaterThan(drain0.indexOf("$var(lm_again) = $mq_size(locmesh_unacked);"));
    // The new connection starts with the window on, whatever the outage lasted.
    expect(drain0).toContain("$var(lm_acked_seen) = $shv(locmesh_acked);\n\t\t$var(lm_acked_at) = $TV(s);\n\t\tif ($var(lm_again) > 0) {");
    expect(drain0.indexOf("if ($var(lm_again) > 0) return;")).toBeGreaterThan(again);
    expect(drain0.indexOf("route(LOCMESH_FORGET);")).toBeGreaterThan(drain0.indexOf("if ($var(lm_again) > 0) return;"));
    const eventAgain = text.split("route[LOCMESH_EVENT_AGAIN] {")[1]?.split("\n}\n")[0] ?? "";
    expect(eventAgain).toContain('mq_add("locmesh_unacked", "$mqk(locmesh_unacked)", "$mqv(locmesh_unacked)");');
    expect(eventAgain).toContain('reg_fetch_contacts("location", "$mqk(locmesh_unacked)", "lmc")');
    // The drain sends at most 8,000 ahead of acknowledgements that come, without a window once they stop for 3 s.
    const drain = text.split("route[LOCMESH_DRAIN] {")[1]?.split("\n}\n")[0] ?? "";
    expect(drain).toContain("$var(lm_window) = 8000;\n\tif ($TV(s) - $var(lm_acked_at) >= 3) {\n\t\t$var(lm_window) = 1000000000;");
    // A REGISTER too big for the queue is sent whole only with the agent connected, and queued as its AoR always.
    const register = text.split("route[LOCMESH_REGISTER] {")[1]?.split("\n}\n")[0] ?? "";
    expect(register).toContain("if ($shv(locmesh_events) != 0) {\n\t\troute(LOCMESH_SEND_WHOLE);\n\t}\n\tmq_add(\"locmesh\", \"$tu\", '\"rc\":4,");
    expect(text).toContain('"count":0,"contacts":[]}\');');
    expect(text).toContain(`evapi_relay('{"v":2,"event":"expired",`);
  });

  it("stops a Kamailio whose usrloc keys AoRs without their domain as it starts, from a route an operator can call from their own", () => {
    expect(text).toMatch(/#!ifndef LOCMESH_OWN_WORKER_INIT_ROUTE\nevent_route\[core:worker-one-init\] \{\n\troute\(LOCMESH_CHECK_USRLOC\);\n\}\n#!endif/);
    const check = text.split("route[LOCMESH_CHECK_USRLOC] {")[1]?.split("\n}\n")[0] ?? "";
    expect(check).toContain(`jsonrpc_exec('{"jsonrpc":"2.0","method":"ul.lookup","params":["location","locmesh-use-domain-probe"],"id":1}');`);
    expect(check).toContain('if ($jsonrpl(code) == 200 || $jsonrpl(body) =~ "AOR not found" || $jsonrpl(body) =~ "AOR has no contacts") {');
    expect(check).toContain('set modparam(\\"usrloc\\", \\"use_domain\\", 1) in kamailio.cfg and restart Kamailio. Kamailio stops now.\\n");\n\t\tdrop;');
  });

  it("stops a Kamailio whose registrar keeps AoRs' case (case_sensitive 1) as it starts, in the same route", () => {
    const check = text.split("route[LOCMESH_CHECK_USRLOC] {")[1]?.split("\n}\n")[0] ?? "";
    expect(check).toContain("\tif ($sel(cfg_get.registrar.case_sensitive) != 0) {\n\t\txlog(\"L_CRIT\", \"locmesh: the registrar's case_sensitive is 1, and locmesh lower-cases AoRs");
    expect(check).toContain('set modparam(\\"registrar\\", \\"case_sensitive\\", 0) (the default) in kamailio.cfg and restart Kamailio. Kamailio stops now.\\n");\n\t\tdrop;');
  });

  it("holds the queue while no agent event connection is open", () => {
    expect(text).toContain('modparam("pv", "shvset", "locmesh_events=i:0")');
    const drain = text.split("route[LOCMESH_DRAIN] {")[1]?.split("\n}\n")[0] ?? "";
    expect(drain).toContain("while ($var(lm_d) < 100 && $shv(locmesh_events) != 0 && $mq_size(locmesh) > 0 && $mq_size(locmesh_unacked) < $var(lm_window)) {");
    expect(drain).toContain('while ($var(lm_e) < 100 && $shv(locmesh_events) != 0 && $mq_size(locmesh_unacked) < $var(lm_window) && mq_fetch("locmesh")) {');
    // Set after the address check, cleared on close and when the connection speaks (a bulk channel).
    const connect = text.split("event_route[evapi:connection-new] {")[1]?.split("\n}\n")[0] ?? "";
    expect(connect.indexOf("$shv(locmesh_events) = $shv(locmesh_events) | (1 << $evapi(conidx));")).toBeGreaterThan(connect.indexOf("evapi_close();"));
    const clear = "$shv(locmesh_events) = $shv(locmesh_events) & ~(1 << $evapi(conidx));";
    expect(text.split("event_route[evapi:connection-closed] {")[1]?.split("\n}\n")[0]).toContain(clear);
    for (const t of [text, kamailioInclude({ ...params, bulkToken: "0123456789abcdef0123456789abcdef" })]) {
      expect(t.split("event_route[evapi:message-received] {")[1]?.split("\n}\n")[0]).toContain(clear);
    }
  });

  it("runs the agent's bulk writes only after a hello with the token, and only the three usrloc writes", () => {
    const token = "0123456789abcdef0123456789abcdef";
    const bulk = kamailioInclude({ ...params, bulkToken: token }).split("event_route[evapi:message-received]")[1] ?? "";
    expect(bulk).toContain(`if ($evapi(msg) == "locmesh-hello:${token}") {`);
    expect(bulk).toContain("if (($var(lm_bulk) & (1 << $evapi(conidx))) == 0) {");
    expect(bulk).toContain("$var(lm_bulk) = $var(lm_bulk) | (1 << $evapi(conidx));");
    expect(bulk).toContain(`$(evapi(msg){s.substr,0,45}) == '{"jsonrpc":"2.0","method":"ul.add","params":['`);
    expect(bulk).toContain(`$(evapi(msg){s.substr,0,44}) == '{"jsonrpc":"2.0","method":"ul.rm","params":['`);
    expect(bulk).toContain(`$(evapi(msg){s.substr,0,52}) == '{"jsonrpc":"2.0","method":"ul.rm_contact","params":['`);
    // The whitelist comes before jsonrpc_exec, and answers go to this connection only.
    expect(bulk.indexOf("$(evapi(msg){s.substr,0,45})")).toBeLessThan(bulk.indexOf("jsonrpc_exec"));
    expect(bulk).not.toContain("evapi_relay");
    // The slot's flag is cleared when a connection closes or a new one takes the slot.
    expect(kamailioInclude({ ...params, bulkToken: token })).toContain("event_route[evapi:connection-closed] {\n\t$var(lm_bulk) = $var(lm_bulk) & ~(1 << $evapi(conidx));");
    // Without a token nothing a client sends is run.
    const none = text.split("event_route[evapi:message-received]")[1] ?? "";
    expect(none).not.toContain("jsonrpc_exec");
    expect(() => kamailioInclude({ ...params, bulkToken: "short" })).toThrow(/bulkToken must be 32 hex digits/);
  });

  it("keeps which bulk channel each of evapi's slots holds for the async workers, one entry per max_clients slot, and only with a token", () => {
    const token = "0123456789abcdef0123456789abcdef";
    const nine = kamailioInclude({ ...params, bulkToken: token, maxEvapiClients: 9 });
    expect(nine).toContain('modparam("evapi", "max_clients", 9)');
    expect(nine).toContain('modparam("pv", "shvset", "locmesh_bulk_live=s:0|0|0|0|0|0|0|0|0")');
    expect(nine.split("route[LOCMESH_BULK_LIVE] {")[1]).toContain("while ($var(lm_k) < 9) {");
    // Cleared when a connection closes and when a new one takes the slot.
    for (const ev of ["connection-closed", "connection-new"]) {
      expect(nine.split(`event_route[evapi:${ev}] {`)[1]?.split("\n}\n")[0]).toContain("$var(lm_to) = 0;\n\troute(LOCMESH_BULK_LIVE);");
    }
    expect(text).not.toContain("locmesh_bulk_live");
    expect(text).not.toContain("LOCMESH_BULK_LIVE");
  });

  it("starts Kamailio with the list given, empty without mesh peers, marked fixed only when asked", () => {
    const none = kamailioInclude({ ...params, meshPeers: [] });
    expect(none).toContain('modparam("pv", "shvset", "locmesh_peers=s:")');
    expect(none).toContain('modparam("pv", "shvset", "locmesh_peers_fixed=i:0")');
    expect(kamailioInclude({ ...params, peersFixed: true })).toContain('modparam("pv", "shvset", "locmesh_peers_fixed=i:1")');
    // in_list comes from textops, which the include loads unless the operator's cfg has.
    expect(none).toMatch(/#!ifndef MOD_textops\nloadmodule "textops\.so"\n#!endif/);
  });

  it("refuses bad parameters, listing every problem", () => {
    const err = (() => {
      try {
        kamailioInclude({ ...params, evapiListen: { host: "localhost", port: 0 }, agentAddress: "x\"; evapi_close", meshPeers: ["1.2.3.4\" || 1"] });
      } catch (e) {
        return e as Error;
      }
      return null;
    })();
    expect(err).toBeInstanceOf(CfgIncludeError);
    expect(err?.message).toMatch(/evapi host "localhost" \(--evapi, kamailio\.evapi\).*evapi port 0.*agent address .*\(--agent-address\).*peer .*\(--peers\) must be an IP address/);
  });
});

describe("kamailioIncludeInstructions", () => {
  it("gives the operator's lines", () => {
    const text = kamailioIncludeInstructions({ includePath: "/etc/kamailio/locmesh.cfg", aliasMode: "usrloc" });
    expect(text).toContain('#!include_file "/etc/kamailio/locmesh.cfg"');
    expect(text).toContain("route(LOCMESH_INBOUND);");
    expect(text).toContain("$var(locmesh_rc) = $rc;\nroute(LOCMESH_REGISTER);");
    expect(text).toContain('lookup("aliases");');
    expect(text).toContain("#!define LOCMESH_OWN_EXPIRED_ROUTE");
    expect(text).toContain('with modparam("usrloc", "use_domain", 1)');
    expect(text).toContain('"#!define LOCMESH_OWN_WORKER_INIT_ROUTE" and route(LOCMESH_CHECK_USRLOC);');
    expect(kamailioIncludeInstructions({ aliasMode: "dbaliases" })).toContain('alias_db_lookup("dbaliases");');
  });
});
