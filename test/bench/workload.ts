/**
 * Location bindings shaped like what a Kamailio registrar stores for real phones behind an edge
 * proxy: a Path header, a NAT'd received address, a Call-ID, a vendor User-Agent, an RFC 5626
 * +sip.instance and a ruid. Sizes follow what Kamailio's `location` table holds for typical
 * desk phones and softphones (about 580 bytes of JSON per edit).
 */
import type { LocationEdit } from "../../agent/contract/api-protocol.js";

const AGENTS = [
  "Yealink SIP-T46S 66.86.0.15",
  "PolycomVVX-VVX_450-UA/6.4.3.6018",
  "Grandstream GXP2170 1.0.11.23",
  "Linphone-Desktop/5.2.4 (belle-sip/5.2.94)",
  "Zoiper rv2.10.20.1",
];

const hex = (n: number, width: number) => n.toString(16).padStart(width, "0").slice(-width);

/** The n-th binding of a run; `prefix` keeps the keys of different runs apart. */
export function bindingEdit(prefix: string, n: number, nowSec: number): LocationEdit {
  const user = `${prefix}${String(n).padStart(7, "0")}`;
  const a = 1 + (n % 250);
  const b = 1 + ((n >> 8) % 250);
  const port = 1024 + ((n * 7919) % 60000);
  const h = hex(n * 2654435761, 8);
  return {
    op: "upsert",
    binding: {
      aor: `sip:${user}@voice.example.com`,
      contact: `sip:${user}@192.168.${b}.${a}:5060;transport=tcp;ob`,
      expires: nowSec + 3600,
      q: -1,
      path: `<sip:edge1.example.com;lr;received=sip:203.0.${b}.${a}:${port}%3Btransport%3Dtcp;ob>`,
      received: `sip:203.0.${b}.${a}:${port};transport=tcp`,
      socket: "tcp:10.0.0.11:5060",
      callid: `${h}${hex(n, 8)}-${h}@192.168.${b}.${a}`,
      cseq: 1 + (n % 5000),
      userAgent: AGENTS[n % AGENTS.length]!,
      flags: 0,
      cflags: 64,
      methods: 8191,
      instance: `<urn:uuid:${h}-${hex(n, 4)}-4a5b-8c9d-${hex(n, 12)}>`,
      regId: 1,
      ruid: `uloc-${h}-${hex(n, 6)}-1`,
    },
  };
}

/** How many bytes of JSON one generated edit is (for the report's notes). */
export function editBytes(): number {
  return JSON.stringify(bindingEdit("bench", 1234567, 1_700_000_000)).length;
}
