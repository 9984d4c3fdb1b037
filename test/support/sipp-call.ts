/**
 * Calls through a test Kamailio with sipp: a phone that answers (UAS: INVITE → 200 OK) on the
 * port it registered from, and a caller (UAC) that sends one INVITE to a given proxy and succeeds
 * only on a 200 OK. Together they prove that routing found the phone, not just a binding.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freeUdpPort } from "./ports.js";
import { SIPP_BIN, needSipp, runSipp } from "./sipp.js";

export interface Phone {
  stop(): Promise<void>;
  /**
   * Calls this phone answered so far, by Call-ID, from sipp's message trace: a 200 OK sent again
   * for an INVITE sent again (a late answer) counts once. sipp writes the trace after sending, so
   * poll it rather than read it once.
   */
  answered(): number;
}

/** A phone on 127.0.0.1:<port> that answers every INVITE with 200 OK. */
export function startPhone(o: { dir: string; port: number; name: string }): Phone {
  needSipp();
  const scenario = join(o.dir, `phone-${o.name}-${o.port}.xml`);
  const trace = join(o.dir, `phone-${o.name}-${o.port}.log`);
  writeFileSync(scenario, UAS);
  const child: ChildProcess = spawn(SIPP_BIN, ["-sf", scenario, "-i", "127.0.0.1", "-p", String(o.port), "-nostdin", "-trace_msg", "-message_file", trace], {
    cwd: o.dir,
    stdio: ["ignore", "ignore", "ignore"],
  });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  return {
    answered() {
      if (!existsSync(trace)) return 0;
      const ids = new Set<string>();
      for (const m of readFileSync(trace, "utf8").matchAll(/^SIP\/2\.0 200 OK[\s\S]*?^Call-ID:\s*(\S+)/gim)) ids.add(m[1]!);
      return ids.size;
    },
    async stop() {
      child.kill("SIGKILL");
      await exited;
    },
  };
}

/** One INVITE to `proxyPort`; resolves on a 200 OK, throws with sipp's output otherwise. */
export async function sippCall(o: { dir: string; proxyPort: number; to: string; timeoutSec?: number }): Promise<void> {
  needSipp();
  const port = await freeUdpPort();
  const scenario = join(o.dir, `call-${port}.xml`);
  writeFileSync(scenario, uac(o.to));
  const args = ["-sf", scenario, "-m", "1", "-l", "1", "-i", "127.0.0.1", "-p", String(port), "-nostdin", "-timeout", `${o.timeoutSec ?? 10}s`, "-timeout_error", `127.0.0.1:${o.proxyPort}`];
  await runSipp(args, { cwd: o.dir, timeoutMs: ((o.timeoutSec ?? 10) + 5) * 1000, what: `sipp INVITE to ${o.to} via 127.0.0.1:${o.proxyPort} (expecting a 200 OK)` });
}

export const UAS = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="locmesh phone">
  <recv request="INVITE"/>
  <send>
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Length: 0

    ]]>
  </send>
  <recv request="ACK" optional="true" timeout="2000" ontimeout="done"/>
  <label id="done"/>
</scenario>
`;

function uac(to: string): string {
  return `<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="locmesh call">
  <send retrans="500">
    <![CDATA[
INVITE ${to} SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
Max-Forwards: 70
From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <${to}>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:caller@[local_ip]:[local_port]>
Content-Length: 0

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true"/>
  <send>
    <![CDATA[
ACK ${to} SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
Max-Forwards: 70
From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <${to}>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Content-Length: 0

    ]]>
  </send>
</scenario>
`;
}

/**
 * REGISTER load: `count` phones `<prefix><n>@domain` (n = 1..count), one REGISTER each, at `rate`
 * per second, all from one local port (each with its own contact user). Resolves with sipp's
 * counts; sipp exits non-zero when any REGISTER failed, which is reported, not thrown.
 */
export async function sippRegisterLoad(o: {
  dir: string; sipPort: number; count: number; rate: number; domain: string; prefix: string; expires?: number;
}): Promise<{ ok: boolean; output: string; localPort: number }> {
  needSipp();
  const localPort = await freeUdpPort();
  const scenario = join(o.dir, `register-load-${o.prefix}.xml`);
  writeFileSync(scenario, `<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="locmesh register load">
  <send retrans="500">
    <![CDATA[
REGISTER sip:${o.domain} SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
Max-Forwards: 70
From: <sip:${o.prefix}[call_number]@${o.domain}>;tag=[pid]SIPpTag[call_number]
To: <sip:${o.prefix}[call_number]@${o.domain}>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:${o.prefix}[call_number]@[local_ip]:[local_port]>
Expires: ${o.expires ?? 600}
User-Agent: sipp-load
Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
`);
  const args = ["-sf", scenario, "-m", String(o.count), "-r", String(o.rate), "-l", "1000", "-i", "127.0.0.1", "-p", String(localPort), "-nostdin", "-timeout", `${Math.ceil(o.count / o.rate) + 20}s`, `127.0.0.1:${o.sipPort}`];
  try {
    const stdout = await runSipp(args, { cwd: o.dir, timeoutMs: (Math.ceil(o.count / o.rate) + 30) * 1000, what: "sipp REGISTER load" });
    return { ok: true, output: stdout.slice(-2000), localPort };
  } catch (err) {
    return { ok: false, output: (err as Error).message, localPort };
  }
}
