/**
 * Registers a phone with a test Kamailio through sipp (Debian package sip-tester): one REGISTER
 * from a small scenario file written into the test's dir, waiting for the 200 OK.
 */
import { execFile } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { freeUdpPort, KAMAILIO_INSTALL } from "./kamailio-process.js";

const run = promisify(execFile);
export const SIPP_BIN = "/usr/bin/sipp";

/** Fails with the install command when sipp is missing (house style: never skip). */
export function needSipp(): void {
  if (!existsSync(SIPP_BIN)) throw new Error(`sipp is not installed (no ${SIPP_BIN}). Install it with: ${KAMAILIO_INSTALL}`);
}

/**
 * Runs sipp to its end; resolves with its stdout, or throws `<what> failed: ...` with sipp's
 * error output and the tail of its screen.
 */
export async function runSipp(args: readonly string[], o: { cwd: string; timeoutMs: number; what: string }): Promise<string> {
  try {
    return (await run(SIPP_BIN, [...args], { cwd: o.cwd, timeout: o.timeoutMs, maxBuffer: 16 << 20 })).stdout;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${o.what} failed: ${e.message}\n${e.stderr ?? ""}\n${(e.stdout ?? "").slice(-2000)}`);
  }
}

export interface RegisterOptions {
  /** Where the scenario file (and any sipp logs) go. */
  dir: string;
  /** Kamailio's SIP port on 127.0.0.1. */
  sipPort: number;
  user: string;
  domain: string;
  /** Seconds; 0 de-registers. Kamailio's registrar clamps to min_expires 60 .. max_expires 3600. */
  expires?: number;
  callId?: string;
  cseq?: number;
  userAgent?: string;
  /** Local UDP port for the phone; also the contact's port. */
  localPort?: number;
  /** Contact header values, one Contact line each, e.g. ["*"]; default one with the phone's contact. */
  contactHeaders?: string[];
}

export interface Registered {
  /** The contact URI the phone registered. */
  contact: string;
  localPort: number;
}

export async function sippRegister(o: RegisterOptions): Promise<Registered> {
  needSipp();
  const localPort = o.localPort ?? (await freeUdpPort());
  const expires = o.expires ?? 300;
  const contact = `sip:${o.user}@127.0.0.1:${localPort}`;
  const scenario = join(o.dir, `register-${o.user}-${localPort}.xml`);
  writeFileSync(scenario, registerScenario({ ...o, expires, contact }));
  const args = ["-sf", scenario, "-m", "1", "-l", "1", "-i", "127.0.0.1", "-p", String(localPort), "-nostdin", "-timeout", "10s", "-timeout_error"];
  // sipp matches responses to its calls by Call-ID, so a chosen Call-ID goes through -cid_str
  // (a literal Call-ID in the scenario makes sipp drop the 200 OK and time out).
  if (o.callId !== undefined) args.push("-cid_str", o.callId.replace(/%/g, "%%"));
  args.push(`127.0.0.1:${o.sipPort}`);
  await runSipp(args, { cwd: o.dir, timeoutMs: 15_000, what: `sipp REGISTER for ${o.user}@${o.domain}` });
  return { contact, localPort };
}

function registerScenario(o: RegisterOptions & { expires: number; contact: string }): string {
  return `<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="locmesh register">
  <send retrans="500">
    <![CDATA[
REGISTER sip:${o.domain} SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
Max-Forwards: 70
From: <sip:${o.user}@${o.domain}>;tag=[pid]SIPpTag[call_number]
To: <sip:${o.user}@${o.domain}>
Call-ID: [call_id]
CSeq: ${o.cseq ?? 1} REGISTER
${(o.contactHeaders ?? [`<${o.contact}>`]).map((c) => `Contact: ${c}`).join("\n")}
Expires: ${o.expires}
User-Agent: ${o.userAgent ?? "sipp"}
Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
`;
}
