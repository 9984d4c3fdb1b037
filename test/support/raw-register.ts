/**
 * A REGISTER written by hand and sent over UDP from a fresh port, so a test controls every byte:
 * headers sipp cannot send, more Contact headers than a phone would.
 */
import { createSocket } from "node:dgram";
import { setTimeout as sleep } from "node:timers/promises";

export interface RawRegister {
  user: string;
  callId: string;
  /** Contact header values, one header each; default one contact at the sender's port. */
  contacts?: (port: number) => string[];
  /** Header lines (without CRLF) such as "User-Agent: x" or "Expires: 300", as bytes or text. */
  headers?: (string | Buffer)[];
}

/**
 * Sends one REGISTER for `user`@example.com to 127.0.0.1:`sipPort` and resolves with the reply's
 * status line (or "no reply" and `why()` after 5 s) and the port it was sent from.
 */
export async function sendRawRegister(sipPort: number, r: RawRegister, why: () => string = () => ""): Promise<{ status: string; port: number }> {
  const sock = createSocket("udp4");
  await new Promise<void>((resolve) => sock.bind(0, "127.0.0.1", resolve));
  const port = sock.address().port;
  try {
    const contacts = (r.contacts ?? ((p) => [`<sip:${r.user}@127.0.0.1:${p}>`]))(port);
    const head = [
      "REGISTER sip:example.com SIP/2.0", `Via: SIP/2.0/UDP 127.0.0.1:${port};branch=z9hG4bK-${port}`, "Max-Forwards: 70",
      `From: <sip:${r.user}@example.com>;tag=${port}`, `To: <sip:${r.user}@example.com>`, `Call-ID: ${r.callId}`, "CSeq: 1 REGISTER",
      ...contacts.map((c) => `Contact: ${c}`),
    ].join("\r\n");
    const lines = [Buffer.from(head), ...(r.headers ?? []).map((h) => Buffer.from(h)), Buffer.from("Content-Length: 0\r\n")];
    const reply = new Promise<string>((resolve) => sock.once("message", (m) => resolve(m.toString().split("\r\n")[0] ?? "")));
    sock.send(Buffer.concat(lines.flatMap((l) => [l, Buffer.from("\r\n")])), sipPort, "127.0.0.1");
    return { status: await Promise.race([reply, sleep(5000).then(() => `no reply\n${why()}`)]), port };
  } finally {
    sock.close();
  }
}
