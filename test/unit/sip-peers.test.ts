import { describe, expect, it } from "vitest";
import { sameSipPeers, sipPeersOf } from "../../agent/kamailio/sip-peers.js";

const peer = (id: string, url: string) => ({ id, url });
const config = (o: { peers?: { id: string; url: string }[]; hubs?: string[]; sipPeers?: string[] | null } = {}) =>
  ({ mesh: { peers: o.peers ?? [] }, hub: { urls: o.hubs ?? [] }, kamailio: o.sipPeers === undefined ? null : { sipPeers: o.sipPeers } }) as unknown as Parameters<typeof sipPeersOf>[0];

describe("sipPeersOf", () => {
  it("takes the hosts of mesh.peers, once each, IPv6 without brackets", () => {
    expect(sipPeersOf(config({ peers: [peer("a", "ws://10.0.0.2:7100"), peer("b", "wss://[2001:db8::3]:7100"), peer("c", "ws://10.0.0.2:7101")] })))
      .toEqual({ peers: ["10.0.0.2", "2001:db8::3"], from: "mesh.peers" });
    expect(sipPeersOf(config())).toEqual({ peers: [], from: "mesh.peers" });
  });

  it("prefers kamailio.sipPeers, also in hub mode and over host names", () => {
    const named = [peer("a", "ws://sip2.example.com:7100")];
    expect(sipPeersOf(config({ peers: named, hubs: ["ws://10.0.0.9:7200"], sipPeers: ["10.0.0.5", "10.0.0.5", "10.0.0.6"] })))
      .toEqual({ peers: ["10.0.0.5", "10.0.0.6"], from: "kamailio.sipPeers" });
    expect(sipPeersOf(config({ sipPeers: [] }))).toEqual({ peers: [], from: "kamailio.sipPeers" });
  });

  it("gives no list, saying why and what to set, in hub mode or with host names", () => {
    const hub = sipPeersOf(config({ peers: [peer("a", "ws://10.0.0.2:7100")], hubs: ["ws://10.0.0.9:7200"], sipPeers: null }));
    expect(hub.peers).toBeNull();
    expect(hub).toMatchObject({ why: expect.stringMatching(/uses a hub.*set kamailio\.sipPeers/) });
    const named = sipPeersOf(config({ peers: [peer("a", "ws://10.0.0.2:7100"), peer("b", "ws://sip3.example.com:7100")] }));
    expect(named).toMatchObject({ peers: null, why: expect.stringMatching(/^mesh\.peers b \(sip3\.example\.com\): not an IP address.*set kamailio\.sipPeers/) });
  });

  it("writes IPv6 entries as Kamailio prints $si (compact, lower case), and compares lists in any order", () => {
    expect(sipPeersOf(config({ sipPeers: ["2001:DB8:0:0:0:0:0:3", "10.0.0.2", "2001:db8::3"] })))
      .toEqual({ peers: ["2001:db8::3", "10.0.0.2"], from: "kamailio.sipPeers" });
    expect(sameSipPeers(["10.0.0.3", "10.0.0.2"], ["10.0.0.2", "10.0.0.3"])).toBe(true);
    expect(sameSipPeers(["10.0.0.2"], ["10.0.0.2", "10.0.0.3"])).toBe(false);
  });
});
