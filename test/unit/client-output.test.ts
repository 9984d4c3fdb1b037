import { describe, expect, it } from "vitest";
import { describeKamailio, describeReload, formatKamailioContacts } from "../../agent/cli/client-output.js";
import type { KamailioStatus } from "../../agent/contract/protocol.js";

const base: KamailioStatus["reload"] = {
  state: "done", reason: "kamailio restarted", total: 100, done: 100, unchanged: 3, startedAt: "2026-11-22T10:00:00.000Z",
  finishedAt: "2026-11-22T10:00:03.000Z", rate: 33, channel: "evapi", error: null,
};

describe("describeReload", () => {
  it("says which way the reload went (the README's status section promises it)", () => {
    expect(describeReload(base)).toBe("done: 100 writes, 3 already right, 33/s over evapi, finished 2026-11-22T10:00:03.000Z");
    expect(describeReload({ ...base, state: "running", done: 40, channel: "jsonrpcs" })).toBe("running (kamailio restarted): 40 of 100 writes over jsonrpcs");
    expect(describeReload({ ...base, state: "failed", done: 40, error: "Kamailio is unreachable" })).toBe("failed after 40 of 100 writes: Kamailio is unreachable");
  });
});

describe("formatKamailioContacts", () => {
  it("says who put each contact into Kamailio, and when there is none", () => {
    const c = { contact: "sip:a@192.0.2.1", expires: 1_000_060, q: -1, path: "", received: "", socket: "", callid: "x", cseq: 1, userAgent: "kamailio SIP Router - RPC Server", ruid: "r" };
    const text = formatKamailioContacts("a@example.com", [{ ...c, installedByAgent: true }, { ...c, contact: "sip:a@192.0.2.2", installedByAgent: false }], 1_000_000);
    expect(text).toMatch(/^a@example\.com in this node's Kamailio: 2 contacts/);
    expect(text).toMatch(/installed by\s+the locmesh agent \(replicated; Call-ID and user agent are ul\.add's\)/);
    expect(text).toMatch(/installed by\s+a REGISTER at this node/);
    expect(text).toMatch(/expires\s+in 60 s/);
    expect(formatKamailioContacts("b@example.com", [], 0)).toBe("this node's Kamailio holds no contact for b@example.com");
  });
});

describe("describeKamailio", () => {
  it("gives the last error when Kamailio is down, not only when writes are pending", () => {
    const k = { up: false, writer: "rpc", events: { connected: false, received: 3 }, restarts: 0, lastError: "Kamailio is unreachable over jsonrpcs (ENOENT)" } as unknown as Parameters<typeof describeKamailio>[0];
    expect(describeKamailio(k)).toBe("DOWN, writing through jsonrpcs, events DISCONNECTED; last error: Kamailio is unreachable over jsonrpcs (ENOENT)");
    expect(describeKamailio({ ...k!, up: true, events: { connected: true, received: 3 } } as typeof k)).toBe("up, writing through jsonrpcs, events connected (3 received)");
  });
});
