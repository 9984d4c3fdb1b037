/**
 * The check for phones on TCP, TLS or WebSocket that came in on a wildcard listener
 * (agent/kamailio/wildcard-sockets.ts): the Path other nodes get for them points nowhere.
 */
import { describe, expect, it } from "vitest";
import { createWildcardSocketCheck, wildcardConnectionSocket, wildcardSocketText } from "../../agent/kamailio/wildcard-sockets.js";
import { capturedLog as capture } from "../support/captured-log.js";

describe("wildcard listener check", () => {
  it("tells a connection's wildcard socket from an addressed one, and leaves UDP alone (reached directly, no Path)", () => {
    expect(["tcp:0.0.0.0:5060", "tls:0.0.0.0:5061", "ws:[::]:8080", "wss:[0:0:0:0:0:0:0:0]:8443", "sctp:0.0.0.0:5060"].map(wildcardConnectionSocket)).toEqual([true, true, true, true, true]);
    expect(wildcardSocketText("tls:[::]:5061")).toMatch(/listen=tls:\[2001:db8::1\]:5061, your node's\) and restart Kamailio$/);
    expect(["udp:0.0.0.0:5060", "tcp:10.0.0.1:5060", "tcp:[2001:db8::1]:5060", "", "not a socket"].map(wildcardConnectionSocket)).toEqual([false, false, false, false, false]);
  });

  it("says what to change in status for an hour after the last such binding, and in the log once an hour while they come", () => {
    let now = 0;
    const { log, lines } = capture();
    const check = createWildcardSocketCheck({ log, nowMs: () => now });
    const warnings = () => lines.filter((l) => l.level === 40).length;
    check.see("tcp:10.0.0.1:5060");
    check.see("udp:0.0.0.0:5060");
    expect([check.warning(), warnings()]).toEqual([null, 0]);
    check.see("tcp:0.0.0.0:5060");
    expect(check.warning()).toMatch(/^phones registered over TCP, TLS or WebSocket on Kamailio's wildcard listener tcp:0\.0\.0\.0:5060: .*listen=tcp:10\.0\.0\.1:5060, your node's\) and restart Kamailio$/);
    expect(warnings()).toBe(1);
    now = 30 * 60_000;
    check.see("tcp:0.0.0.0:5060");
    expect(warnings()).toBe(1);
    now = 60 * 60_000;
    check.see("tcp:0.0.0.0:5060");
    expect(warnings()).toBe(2);
    expect(lines.at(-1)?.msg).toMatch(/Repeated hourly while such registrations come$/);
    // Fixed (the phones re-registered on an addressed listener): gone from status an hour later.
    check.see("tcp:10.0.0.1:5060");
    now = 2 * 60 * 60_000 - 1;
    expect(check.warning()).not.toBeNull();
    now = 2 * 60 * 60_000;
    expect(check.warning()).toBeNull();
  });
});
