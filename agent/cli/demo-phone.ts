/**
 * A phone for the demo: a sipp scenario (Debian package sip-tester) that sends one REGISTER for
 * the user given with `-s`, written next to the demo's files so the banner can print a command
 * that works as pasted.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";

export const SIPP_REGISTER_FILE = "sipp-register.xml";

/** Writes the scenario into the demo folder; returns its path. */
export function writeSippRegisterScenario(demoDir: string, domain: string, expires = 3600): string {
  const path = join(demoDir, SIPP_REGISTER_FILE);
  writeFileSync(path, sippRegisterScenario(domain, expires));
  return path;
}

/**
 * The REGISTER waits for a 200 OK, resending every 500 ms. The Call-ID is sipp's own ([call_id]):
 * sipp matches responses to calls by it.
 */
function sippRegisterScenario(domain: string, expires: number): string {
  return `<?xml version="1.0" encoding="ISO-8859-1" ?>
<!-- Written by \`locmesh demo\`. One REGISTER of user <-s> in ${domain}, e.g.:
     sipp -sf ${SIPP_REGISTER_FILE} -s alice -i 127.0.0.1 -m 1 -nostdin 127.0.0.1:5071 -->
<scenario name="locmesh demo register">
  <send retrans="500">
    <![CDATA[
REGISTER sip:${domain} SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
Max-Forwards: 70
From: <sip:[service]@${domain}>;tag=[pid]SIPpTag[call_number]
To: <sip:[service]@${domain}>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:[service]@[local_ip]:[local_port]>
Expires: ${expires}
User-Agent: sipp (locmesh demo)
Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
`;
}

/** The sipp command line that registers `user` at 127.0.0.1:<sipPort> with the scenario. */
export function sippRegisterCommand(scenario: string, user: string, sipPort: number): string {
  return `sipp -sf ${scenario} -s ${user} -i 127.0.0.1 -m 1 -nostdin -timeout 10s -timeout_error 127.0.0.1:${sipPort}`;
}
