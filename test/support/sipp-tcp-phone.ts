/**
 * A phone on TCP, as such phones work: it registers over one connection to its proxy, keeps it
 * open, and takes its calls down that same connection (a proxy cannot connect to a phone behind
 * NAT). One sipp process registers (`-t t1`) and answers every INVITE that comes down its
 * connection with 200 OK (an out-of-call scenario, `-oocsf`).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "./ports.js";
import { SIPP_BIN, needSipp } from "./sipp.js";
import { UAS } from "./sipp-call.js";

export interface TcpPhone {
  /** The contact URI it registered. */
  readonly contact: string;
  /** INVITEs it answered so far (the 200 OKs it sent, from sipp's message trace). */
  answered(): number;
  /** Kills sipp: the connection closes. */
  stop(): Promise<void>;
}

export async function startTcpPhone(o: { dir: string; proxyPort: number; user: string; domain: string; expires?: number }): Promise<TcpPhone> {
  needSipp();
  const port = await freePort();
  const contact = `sip:${o.user}@127.0.0.1:${port};transport=tcp`;
  const scenario = join(o.dir, `tcp-phone-${o.user}-${port}.xml`);
  const answer = join(o.dir, `tcp-phone-${o.user}-${port}-answer.xml`);
  const trace = join(o.dir, `tcp-phone-${o.user}-${port}.log`);
  writeFileSync(scenario, registerAndHold(o.user, o.domain, o.expires ?? 300));
  writeFileSync(answer, UAS);
  const child: ChildProcess = spawn(
    SIPP_BIN,
    ["-t", "t1", "-sf", scenario, "-oocsf", answer, "-m", "1", "-l", "1", "-i", "127.0.0.1", "-p", String(port), "-nostdin", "-trace_msg", "-message_file", trace, `127.0.0.1:${o.proxyPort}`],
    { cwd: o.dir, stdio: ["ignore", "ignore", "ignore"] },
  );
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  return {
    contact,
    answered() {
      if (!existsSync(trace)) return 0;
      return (readFileSync(trace, "utf8").match(/message sent \(\d+ bytes\):\s*SIP\/2\.0 200 OK/g) ?? []).length;
    },
    async stop() {
      child.kill("SIGKILL");
      await exited;
    },
  };
}

function registerAndHold(user: string, domain: string, expires: number): string {
  return `<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="locmesh tcp phone">
  <send>
    <![CDATA[
REGISTER sip:${domain} SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
Max-Forwards: 70
From: <sip:${user}@${domain}>;tag=[pid]SIPpTag[call_number]
To: <sip:${user}@${domain}>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:${user}@[local_ip]:[local_port];transport=tcp>
Expires: ${expires}
User-Agent: sipp-tcp
Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
  <pause milliseconds="600000"/>
</scenario>
`;
}
