/**
 * `locmesh check`'s look at the local Kamailio, through the same clients the agent uses: jsonrpcs
 * over the FIFO (and the datagram socket when configured), the include (its REGISTER gate and the
 * nodes it lets relay calls), usrloc's keys (use_domain), evapi, and Kamailio's database. What
 * fails says what to do: most of it is the agent's own wording for the same failure.
 *
 * Nothing is written into Kamailio. evapi is only connected to while no agent runs (the include
 * takes any connection from the agent's address for the agent's, and sends it events): the check
 * connects, asks whether the include took the connection, and closes; what was sent meanwhile
 * stays kept for the agent (cfg-include-names.ts RELAYED_SHV), which gets it again when it connects.
 */
import { lookup } from "node:dns/promises";
import { statSync } from "node:fs";
import { isIP, Socket } from "node:net";
import type { AgentConfig, KamailioConfig } from "../config/agent-config.js";
import { EVENTS_SHV, PEERS_FIXED_SHV, PEERS_SHV, READY_SHV } from "../kamailio/cfg-include-names.js";
import { createCoreRpc, type CoreRpc } from "../kamailio/core-rpc.js";
import { createDgramClient } from "../kamailio/dgram-client.js";
import { createFifoClient, type FifoClient } from "../kamailio/fifo-client.js";
import { KamailioRpcError, type KamailioRpc } from "../kamailio/jsonrpcs-wire.js";
import { openKamailioDb } from "../kamailio/kamailio-db.js";
import { sameSipPeers, sipPeersOf } from "../kamailio/sip-peers.js";
import { useDomainProblem } from "../kamailio/usrloc-keys.js";
import { createUsrlocRpc, USE_DOMAIN_PROBE } from "../kamailio/usrloc-rpc.js";
import { formatDuration } from "../cli/client-output.js";
import type { Logger } from "../ops/logger.js";
import { redactUrl } from "../ops/redact-url.js";
import { errorText, sentences, type CheckResult } from "./check-result.js";

/** The include's LOCMESH_READY_GRACE unless the operator's cfg defines another. */
const DEFAULT_READY_GRACE_SEC = 60;
const NO_INCLUDE = "the locmesh include is not loaded in this Kamailio: `locmesh kamailio-cfg --config <agent config> -o /etc/kamailio/locmesh.cfg`, then the lines `locmesh kamailio-cfg --instructions` prints, and restart Kamailio";

export async function checkKamailio(o: {
  config: AgentConfig;
  kamailio: KamailioConfig;
  /** null: whether an agent runs could not be told (evapi is then left alone). */
  agentRunning: boolean | null;
  timeoutMs: number;
  log: Logger;
}): Promise<CheckResult[]> {
  const k = o.kamailio;
  const results: CheckResult[] = [];
  let fifo: FifoClient;
  try {
    fifo = createFifoClient({
      fifoPath: k.fifo, replyDir: k.replyDir, timeoutMs: o.timeoutMs, log: o.log, maxInFlight: 1,
      // Shorter than the agent's "locmesh": a fifo_reply_dir the agent's names fit in fits these.
      replyFifoMode: k.replyFifoMode, replyNamePrefix: "lmck", autoResync: false,
      ...replyFifoOwner(k.fifo),
    });
  } catch (err) {
    return [{ subject: "kamailio fifo", state: "fail", detail: errorText(err) }];
  }
  let dgram: KamailioRpc | null = null;
  try {
    const fifoCore = createCoreRpc({ rpc: fifo });
    const up = await answers(fifoCore, `the jsonrpcs FIFO ${k.fifo}`);
    results.push({ subject: "kamailio fifo", ...up.result });
    let dgramUptime: number | null = null;
    if (k.dgram) {
      const d = await checkDgram(k.dgram, o);
      results.push({ subject: "kamailio dgram", ...d.result });
      dgram = d.rpc;
      dgramUptime = d.uptimeSec;
    }
    // The rest over the FIFO, or over the datagram socket when only that answers (as the agent's
    // own calls fail over: kamailio-links.ts).
    const rpc: KamailioRpc | null = up.uptimeSec !== null ? fifo : dgramUptime !== null ? dgram : null;
    const uptimeSec = up.uptimeSec ?? dgramUptime;
    const core = rpc === null ? null : createCoreRpc({ rpc });
    if (rpc === null || core === null || uptimeSec === null) {
      results.push({ subject: "kamailio include", state: "skip", detail: "not looked at, nor the nodes it lets relay calls, nor usrloc's keys: Kamailio does not answer over jsonrpcs" });
    } else {
      results.push(await checkInclude(core, uptimeSec, o.agentRunning === true));
      results.push(await checkSipPeers(core, o.config));
      results.push(await checkUsrloc(rpc, k));
    }
    if (k.evapi) results.push(await checkEvapi(k.evapi, core, o.agentRunning, o.timeoutMs));
  } finally {
    await fifo.close();
    await dgram?.close();
  }
  if (k.db) results.push(await checkDatabase(k, o));
  return results;
}

/**
 * Run as root, the check's reply FIFOs go to the owner of Kamailio's request FIFO (Kamailio's
 * user), who can then open them whatever kamailio.replyFifoMode says; the agent's user is the one
 * that mode is set for.
 */
function replyFifoOwner(fifoPath: string): { replyFifoChownTo?: { uid: number; gid: number } } {
  if (process.getuid?.() !== 0) return {};
  try {
    const st = statSync(fifoPath);
    return { replyFifoChownTo: { uid: st.uid, gid: st.gid } };
  } catch {
    return {};
  }
}

async function answers(core: CoreRpc, over: string): Promise<{ result: Omit<CheckResult, "subject">; uptimeSec: number | null }> {
  try {
    const version = await core.coreVersion();
    const inst = await core.instance();
    const m = /kamailio (\d+)\.(\d+)/i.exec(version);
    const detail = `${version}, up ${formatDuration(inst.uptimeSec)} (main process ${inst.mainPid}), answers over ${over}`;
    if (m && !(m[1] === "5" && m[2] === "6")) {
      return { result: { state: "warn", detail: `${detail}; locmesh is made and tested for Kamailio 5.6, and this one's jsonrpcs or usrloc may answer otherwise` }, uptimeSec: inst.uptimeSec };
    }
    return { result: { state: "ok", detail }, uptimeSec: inst.uptimeSec };
  } catch (err) {
    return { result: { state: "fail", detail: errorText(err) }, uptimeSec: null };
  }
}

/** The datagram socket's check, and its client (null when it does not answer), which the caller closes. */
async function checkDgram(dgram: string, o: { timeoutMs: number; log: Logger }): Promise<{ result: Omit<CheckResult, "subject">; rpc: KamailioRpc | null; uptimeSec: number | null }> {
  const m = /^udp:\[?([^\]]+?)\]?:(\d+)$/.exec(dgram)!;
  const failed = (why: string) => ({
    result: { state: "fail" as const, detail: sentences(why, `Without it the agent writes through the FIFO alone (slower); set modparam("jsonrpcs","dgram_socket","${dgram}"), or leave kamailio.dgram out`) },
    rpc: null,
    uptimeSec: null,
  });
  let rpc: KamailioRpc;
  try {
    // A name that does not resolve, said as such (the client itself would fail its calls obscurely).
    if (isIP(m[1]!) === 0) await withTimeout(lookup(m[1]!), o.timeoutMs, `resolving ${m[1]} took longer than ${o.timeoutMs} ms`);
    rpc = await createDgramClient({ host: m[1]!, port: Number(m[2]), timeoutMs: o.timeoutMs, log: o.log, maxInFlight: 1 });
  } catch (err) {
    return failed(errorText(err));
  }
  const up = await answers(createCoreRpc({ rpc }), dgram);
  if (up.uptimeSec === null) {
    await rpc.close();
    return failed(up.result.detail);
  }
  return { result: up.result, rpc, uptimeSec: up.uptimeSec };
}

async function checkInclude(core: CoreRpc, uptimeSec: number, agentRunning: boolean): Promise<CheckResult> {
  const subject = "kamailio include";
  let ready: number;
  try {
    ready = Number(await core.getShv(READY_SHV));
  } catch (err) {
    if (err instanceof KamailioRpcError && err.code === 404) return { subject, state: "fail", detail: NO_INCLUDE };
    return { subject, state: "fail", detail: errorText(err) };
  }
  if (ready === 1) return { subject, state: "ok", detail: "loaded; its REGISTER gate is open (the agent made this Kamailio whole after its start)" };
  if (uptimeSec >= DEFAULT_READY_GRACE_SEC) {
    const why = agentRunning ? "the running agent has not opened it (locmesh status says why: a reload under way, or Kamailio not attached)" : "no agent has opened it since Kamailio started";
    return { subject, state: "warn", detail: `loaded; its REGISTER gate is closed: ${why}. Past its grace (LOCMESH_READY_GRACE, ${DEFAULT_READY_GRACE_SEC} s unless your cfg sets it) Kamailio takes REGISTERs anyway, without the agent's bindings` };
  }
  const until = `Kamailio answers REGISTER with 503 until the agent has put its bindings back, for at most ${DEFAULT_READY_GRACE_SEC - uptimeSec} s more (LOCMESH_READY_GRACE)`;
  return { subject, state: "warn", detail: `loaded; its REGISTER gate is closed: ${until}${agentRunning ? "" : ". Start the agent"}` };
}

async function checkSipPeers(core: CoreRpc, config: AgentConfig): Promise<CheckResult> {
  const subject = "kamailio sip peers";
  let held: string[];
  let fixed: boolean;
  try {
    const list = String(await core.getShv(PEERS_SHV));
    held = list === "" ? [] : list.split(",");
    fixed = Number(await core.getShv(PEERS_FIXED_SHV)) === 1;
  } catch (err) {
    if (err instanceof KamailioRpcError && err.code === 404) {
      return { subject, state: "warn", detail: "the include predates the list of nodes that may relay calls (no $shv(locmesh_peers)): regenerate it (locmesh kamailio-cfg) and restart Kamailio once" };
    }
    return { subject, state: "fail", detail: errorText(err) };
  }
  const shown = held.length === 0 ? "none" : held.join(", ");
  const wanted = sipPeersOf(config);
  if (fixed) {
    const differs = wanted.peers !== null && !sameSipPeers(held, wanted.peers) ? `; ${wanted.from} says ${wanted.peers.join(", ") || "none"}: regenerate the include without --peers to let the agent keep the list` : "";
    return { subject, state: differs ? "warn" : "ok", detail: `fixed in the include (kamailio-cfg --peers): ${shown}${differs}` };
  }
  if (wanted.peers === null) return { subject, state: "warn", detail: `Kamailio lets ${shown} relay calls to its phones, and the agent leaves the list as it is: ${wanted.why}` };
  if (sameSipPeers(held, wanted.peers)) return { subject, state: "ok", detail: `Kamailio lets ${shown} relay calls to its phones, as ${wanted.from} says` };
  return { subject, state: "warn", detail: `Kamailio lets ${shown} relay calls to its phones; ${wanted.from} says ${wanted.peers.join(", ") || "none"}. The agent sets it at its start and on SIGHUP` };
}

async function checkUsrloc(rpc: KamailioRpc, k: KamailioConfig): Promise<CheckResult> {
  const subject = "kamailio usrloc";
  const usrloc = createUsrlocRpc({ rpc });
  try {
    const withDomain = await usrloc.keysWithDomain(k.locationTable);
    if (withDomain === false) return { subject, state: "fail", detail: useDomainProblem(null) };
    const count = await usrloc.ulContactCount(k.locationTable);
    const holds = count === null ? "" : `; its ${k.locationTable} table holds ${count} contact${count === 1 ? "" : "s"}`;
    if (withDomain === null) {
      // What Kamailio said to the probe: "Domain table not found" when no usrloc domain has that name.
      const said = await rpc.call("ul.lookup", [k.locationTable, USE_DOMAIN_PROBE]).then(() => "", (err: unknown) => (err instanceof KamailioRpcError ? err.kamailioMessage : errorText(err)));
      if (/table not found/i.test(said)) {
        return { subject, state: "fail", detail: `usrloc has no domain "${k.locationTable}" (Kamailio: "${said}"): kamailio.locationTable must name the table the cfg's save() uses ("location" unless it says otherwise); every write into Kamailio would fail` };
      }
      return { subject, state: "warn", detail: `could not tell whether usrloc keys AoRs user@domain (use_domain 1), which locmesh needs (Kamailio: "${said}")${holds}` };
    }
    return { subject, state: "ok", detail: `keys AoRs user@domain (use_domain 1)${holds}` };
  } catch (err) {
    return { subject, state: "fail", detail: errorText(err) };
  }
}

/**
 * Connects to evapi as the agent would and, while connected, asks Kamailio over jsonrpcs whether
 * the include took the connection for the agent's: a new bit in $shv(locmesh_events), one per evapi
 * connection it counts as the agent's. Only then is it this Kamailio's evapi with the include, not
 * merely something listening there.
 */
async function checkEvapi(evapi: { host: string; port: number }, core: CoreRpc | null, agentRunning: boolean | null, timeoutMs: number): Promise<CheckResult> {
  const subject = "kamailio evapi";
  const at = `${evapi.host.includes(":") ? `[${evapi.host}]` : evapi.host}:${evapi.port}`;
  if (agentRunning === true) return { subject, state: "skip", detail: `not connected to: the running agent reads its events at ${at} (locmesh status shows its events line)` };
  if (agentRunning === null) return { subject, state: "skip", detail: `not connected to: whether an agent runs could not be told (see journal), and the include would send a connection from here the agent's events` };
  const before = core === null ? null : await eventBits(core);
  // Some client already holds the agent's place (an agent on another dataDir, or one this check
  // could not see): a connection from here would share its events.
  if (typeof before === "number" && before !== 0) {
    return { subject, state: "skip", detail: `not connected to: the include counts another connection as the agent's now ($shv(locmesh_events) is ${before}); an agent runs against this Kamailio` };
  }
  return new Promise((resolve) => {
    const sock = new Socket();
    let settled = false;
    const done = (r: Omit<CheckResult, "subject">) => {
      if (settled) return;
      settled = true;
      clearTimeout(connectTimer);
      sock.destroy();
      resolve({ subject, ...r });
    };
    const connectTimer = setTimeout(() => done({ state: "fail", detail: `no answer from ${at} in time: is kamailio.evapi the include's evapi address, and nothing in between?` }), timeoutMs);
    sock.once("error", (err: NodeJS.ErrnoException) => {
      const why = err.code === "ECONNREFUSED" ? "nothing listens there" : errorText(err);
      done({ state: "fail", detail: `cannot connect to evapi at ${at}: ${why}. The include sets evapi's bind_addr: is it loaded, and was it made with this kamailio.evapi (locmesh kamailio-cfg --config)?` });
    });
    sock.connect(evapi.port, evapi.host, () => {
      clearTimeout(connectTimer);
      sock.once("close", () => done({ state: "fail", detail: `Kamailio closed the connection from ${sock.localAddress ?? "this host"} at once: the include lets only the agent's address connect to evapi. Run the agent from the address the include names, or regenerate it (locmesh kamailio-cfg --agent-address)` }));
      void seenByInclude(core, before, timeoutMs).then((seen) => {
        if (seen === "yes") done({ state: "ok", detail: `takes the agent's connection at ${at}, and the include counts it as the agent's` });
        else if (seen === "no include") done({ state: "fail", detail: `something takes connections at ${at}, but this Kamailio has no locmesh include to send events there (see kamailio include)` });
        else if (seen === "no") done({ state: "fail", detail: `something takes connections at ${at}, but not this Kamailio's evapi: the include did not see the connection. Set kamailio.evapi to the include's evapi address (the include is made from it: locmesh kamailio-cfg --config)` });
        else done({ state: "warn", detail: `something takes connections at ${at}; whether it is this Kamailio's evapi is not known: ${seen}` });
      });
    });
  });
}

/** $shv(locmesh_events), "no include" when the cfg has no such variable, or why it could not be read. */
async function eventBits(core: CoreRpc): Promise<number | "no include" | string> {
  try {
    return Number(await core.getShv(EVENTS_SHV));
  } catch (err) {
    return err instanceof KamailioRpcError && err.code === 404 ? "no include" : errorText(err);
  }
}

/**
 * Whether a bit that `before` lacked shows in $shv(locmesh_events) within `timeoutMs` (the
 * include's connection route runs in evapi's process, a moment after the accept).
 */
async function seenByInclude(core: CoreRpc | null, before: number | string | null, timeoutMs: number): Promise<"yes" | "no" | "no include" | string> {
  if (core === null || before === null) return "Kamailio does not answer over jsonrpcs";
  if (typeof before === "string") return before;
  for (const until = Date.now() + Math.min(timeoutMs, 2000); ;) {
    const now = await eventBits(core);
    if (typeof now === "string") return now;
    if ((now & ~before) !== 0) return "yes";
    if (Date.now() > until) return "no";
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function checkDatabase(k: KamailioConfig, o: { timeoutMs: number; log: Logger }): Promise<CheckResult> {
  const subject = "kamailio database";
  const url = redactUrl(k.db!.url);
  let db;
  try {
    db = openKamailioDb({
      url: k.db!.url, aliasMode: k.aliases, locationTable: k.locationTable, aliasTable: k.aliasTable, connectTimeoutMs: o.timeoutMs,
      ...(k.db!.timeZone === undefined ? {} : { timeZone: k.db!.timeZone }),
    }, { log: o.log });
    await db.ping();
    return { subject, state: "ok", detail: `${url} answers (usrloc db_mode ${k.db!.dbMode}): the agent's way in when jsonrpcs fails` };
  } catch (err) {
    return { subject, state: "fail", detail: sentences(`${url}: ${errorText(err)}`, "The agent writes there when jsonrpcs fails; until it answers, such writes wait") };
  } finally {
    await db?.close();
  }
}

/** `p`, or a rejection saying `why` after `ms`. */
function withTimeout<T>(p: Promise<T>, ms: number, why: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(why)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
