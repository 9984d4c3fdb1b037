/**
 * What another locmesh node sends to reach a phone registered here: an initial INVITE whose Route
 * names this Kamailio with the phone's address in received= (the include's route(LOCMESH_INBOUND)).
 * Sent over UDP from a chosen loopback source address, so tests can be a listed node or not.
 */
import { createSocket } from "node:dgram";

export interface RelayInvite {
  /** The address the INVITE comes from (127.0.0.x). */
  from: string;
  callId: string;
  /** Kamailio's SIP port on 127.0.0.1. */
  sipPort: number;
  /** The phone's UDP port on 127.0.0.1: the Route's received=. */
  phonePort: number;
  /** Resolves once this holds for the replies so far, or after 5 s. */
  done: (replies: string[]) => boolean;
}

/** Sends the INVITE and resolves with the replies it got (joined), when `done` holds or after 5 s. */
export function relayInvite(o: RelayInvite): Promise<string> {
  const peer = createSocket("udp4");
  const replies: string[] = [];
  return new Promise((resolve) => {
    const finish = () => {
      clearInterval(poll);
      clearTimeout(giveUp);
      peer.close(() => resolve(replies.join("\n")));
    };
    const poll = setInterval(() => o.done(replies) && finish(), 20);
    const giveUp = setTimeout(finish, 5000);
    peer.on("message", (m) => replies.push(m.toString()));
    peer.bind(0, o.from, () => {
      const port = peer.address().port;
      const msg = [
        "INVITE sip:bob@203.0.113.9:5060 SIP/2.0",
        `Via: SIP/2.0/UDP ${o.from}:${port};branch=z9hG4bK-${o.callId}`,
        `Route: <sip:127.0.0.1:${o.sipPort};lr;received=sip:127.0.0.1:${o.phonePort}>`,
        "Max-Forwards: 70",
        "From: <sip:carol@example.com>;tag=c1",
        "To: <sip:bob@example.com>",
        `Call-ID: ${o.callId}`,
        "CSeq: 1 INVITE",
        `Contact: <sip:carol@${o.from}:${port}>`,
        "Content-Length: 0",
        "",
        "",
      ].join("\r\n");
      peer.send(msg, o.sipPort, "127.0.0.1");
    });
  });
}
