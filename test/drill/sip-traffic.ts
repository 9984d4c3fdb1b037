/**
 * REGISTER traffic for the drills: one sipp per Kamailio node, driven by an injection file of
 * registrations and de-registrations, logging when each REGISTER left and when its 200 OK came
 * back. Those logs become the ledger's "loc" writes once sipp has finished.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freeUdpPort } from "../support/ports.js";
import { SIPP_BIN, needSipp } from "../support/sipp.js";
import type { Ledger } from "./ledger.js";

export interface SipTrafficOptions {
  dir: string;
  /** Node id, and the tag that keeps its users apart from other nodes' ("n1" gives users dn1u…). */
  node: string;
  sipPort: number;
  domain: string;
  /** REGISTERs in all (registrations and de-registrations). */
  count: number;
  /** REGISTERs per second. */
  rate: number;
  /** Every `deregEvery`-th REGISTER removes a contact registered about 1.5 s earlier (0: none). */
  deregEvery?: number;
  /** Binding lifetime: long enough that nothing expires during a drill. */
  expires?: number;
  /** Distinct AoRs; registrations cycle over them, so each collects several contacts. */
  users?: number;
  /** A prefix for users and contacts, to keep several runs against one cluster apart. */
  tag?: string;
  /**
   * Distinct contacts (default: one per REGISTER). Fewer makes later REGISTERs refresh earlier
   * contacts, as a re-registration storm does, and keeps Kamailio's table (and ul.dump) small.
   */
  contacts?: number;
  /** sipp's -l: REGISTERs outstanding at most (default 2000). */
  limit?: number;
  /** How long sipp waits for the 200 OK before the REGISTER counts as unanswered (default 8000). */
  recvTimeoutMs?: number;
}

interface Line {
  user: string;
  contact: string;
  expires: number;
}

export interface SipTraffic {
  readonly node: string;
  /** Resolves when sipp has sent everything (or was stopped); never rejects. */
  readonly done: Promise<{ exitCode: number | null }>;
  /** Stops sipp early (SIGUSR1 asks it to end gracefully, SIGKILL after 5 s). */
  stop(): Promise<void>;
  /** Reads sipp's log into the ledger; call once, after `done`. Returns what was recorded. */
  record(ledger: Ledger): { sent: number; acked: number; doubt: number };
}

/** Starts sipp sending `count` REGISTERs at `rate`/s to one Kamailio. */
export async function startSipTraffic(o: SipTrafficOptions): Promise<SipTraffic> {
  needSipp();
  const localPort = await freeUdpPort();
  const tag = `${o.tag ?? "d"}${o.node}`;
  const expires = o.expires ?? 3600;
  const users = o.users ?? Math.max(1, Math.floor(o.count / 3));
  const deregEvery = o.deregEvery ?? 5;
  const contacts = o.contacts ?? o.count;
  // A removal targets the REGISTER sent ~1.5 s before it: long after that one's 200 OK on a
  // healthy node, so the ledger can order them. The gap is never a multiple of deregEvery, so a
  // removal never points at another removal.
  let gap = Math.max(1, Math.round(o.rate * 1.5));
  if (deregEvery > 0 && gap % deregEvery === 0) gap++;
  const lines: Line[] = [];
  for (let i = 0; i < o.count; i++) {
    const isDereg = deregEvery > 0 && i % deregEvery === deregEvery - 1 && i >= gap;
    const slot = (isDereg ? i - gap : i) % contacts;
    lines.push({ user: `${tag}u${slot % users}`, contact: `${tag}c${slot}`, expires: isDereg ? 0 : expires });
  }
  const csv = join(o.dir, `drill-${tag}.csv`);
  writeFileSync(csv, ["SEQUENTIAL", ...lines.map((l) => `${l.user};${l.contact};${l.expires};`)].join("\n") + "\n");
  const scenario = join(o.dir, `drill-${tag}.xml`);
  writeFileSync(scenario, scenarioXml(o.domain));
  const log = join(o.dir, `drill-${tag}-sipp.log`);
  const args = [
    "-sf", scenario, "-inf", csv, "-m", String(o.count), "-r", String(o.rate), "-l", String(o.limit ?? 2000),
    "-i", "127.0.0.1", "-p", String(localPort), "-nostdin", "-trace_logs", "-log_file", log,
    "-timeout", `${Math.ceil(o.count / o.rate) + 120}s`, "-recv_timeout", String(o.recvTimeoutMs ?? 8000),
    `127.0.0.1:${o.sipPort}`,
  ];
  const child: ChildProcess = spawn(SIPP_BIN, args, { cwd: o.dir, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const done = new Promise<{ exitCode: number | null }>((resolve) => {
    child.once("exit", (code) => resolve({ exitCode: code }));
    child.once("error", () => resolve({ exitCode: null }));
  });
  let recorded = false;
  return {
    node: o.node,
    done,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGUSR1");
      const t = setTimeout(() => child.kill("SIGKILL"), 5000);
      await done;
      clearTimeout(t);
    },
    record(ledger) {
      if (recorded) throw new Error("sip traffic already recorded");
      recorded = true;
      if (!existsSync(log)) throw new Error(`sipp wrote no log for ${o.node} (${log}); its stderr: ${stderr}`);
      return recordLog(readFileSync(log, "utf8"), { node: o.node, domain: o.domain, localPort, ledger });
    },
  };
}

function scenarioXml(domain: string): string {
  return `<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="locmesh drill REGISTER">
  <nop><action><gettimeofday assign_to="s0,u0"/><log message="S [call_number] [field0] [field1] [field2] [$s0] [$u0]"/></action></nop>
  <send retrans="500">
    <![CDATA[
REGISTER sip:${domain} SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
Max-Forwards: 70
From: <sip:[field0]@${domain}>;tag=[pid]SIPpTag[call_number]
To: <sip:[field0]@${domain}>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:[field1]@[local_ip]:[local_port]>
Expires: [field2]
User-Agent: locmesh-drill
Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
  <nop><action><gettimeofday assign_to="s1,u1"/><log message="A [call_number] [field0] [field1] [field2] [$s1] [$u1]"/></action></nop>
</scenario>
`;
}

/**
 * sipp prints a variable as a double ("1795314012.000000"), and a zero as nothing at all (seen once
 * in 24,000 lines: a REGISTER sent at exactly .000000 s lost its de-registration from the ledger).
 */
const ms = (s: string, us: string | undefined): number => Number.parseFloat(s) * 1000 + (us ? Number.parseFloat(us) / 1000 : 0);

function recordLog(
  text: string,
  c: { node: string; domain: string; localPort: number; ledger: Ledger },
): { sent: number; acked: number; doubt: number } {
  const sent = new Map<string, { user: string; contact: string; expires: number; sentMs: number; doneMs: number }>();
  for (const line of text.split("\n")) {
    if (!/^[SA] /.test(line)) continue;
    const m = /^([SA]) (\d+) (\S+) (\S+) (\d+) (\S+)(?: (\S+))?$/.exec(line.trim());
    // A line the ledger cannot read would silently drop a write from the check.
    if (!m) throw new Error(`cannot read sipp's log line ${JSON.stringify(line)} (${c.node})`);
    // One sipp call per injection line: the call number tells REGISTERs of one contact apart.
    const [, what, id, user, contact, exp, s, us] = m;
    if (what === "S") sent.set(id!, { user: user!, contact: contact!, expires: Number(exp), sentMs: ms(s!, us), doneMs: Infinity });
    else {
      const op = sent.get(id!);
      if (!op) throw new Error(`sipp logged an answer to REGISTER ${id} that it never logged sending (${c.node})`);
      op.doneMs = ms(s!, us);
    }
  }
  let acked = 0;
  for (const op of sent.values()) {
    const ok = op.doneMs !== Infinity;
    if (ok) acked++;
    c.ledger.add({
      kind: "loc",
      key: `${op.user}@${c.domain}`,
      sub: `sip:${op.contact}@127.0.0.1:${c.localPort}`,
      value: op.expires > 0 ? "present" : null,
      node: c.node,
      sentMs: op.sentMs,
      doneMs: op.doneMs,
      outcome: ok ? "acked" : "doubt",
    });
  }
  return { sent: sent.size, acked, doubt: sent.size - acked };
}
