import { describe, expect, it } from "vitest";
import { PeerMethod } from "../../agent/contract/protocol.js";
import { requestFrame } from "../../agent/mesh/request-frame.js";

const requestText = (req: Parameters<typeof requestFrame>[0]) => requestFrame(req).toString();
import { fastBatch } from "../../agent/mesh/fast-batch.js";
import { REPLICA_A, binding, locDraft, remoteChange, aliasDraft } from "../support/fixtures.js";

const changes = [
  remoteChange(REPLICA_A, 1, 1000, locDraft("älice@example.com", "sip:a@10.0.0.1;transport=tcp", binding({ userAgent: "ü \"q\" \u2028" }))),
  remoteChange(REPLICA_A, 2, 1001, aliasDraft("sales@x", null)),
];

describe("requestFrame", () => {
  it("writes a batch request that parses to what JSON.stringify would give, and that the receiver's fast check accepts", () => {
    const req = { jsonrpc: "2.0" as const, method: PeerMethod.Batch, params: { origin: REPLICA_A, after: 0, upTo: 2, changes }, id: 7 };
    // Bytes, so that the WebSocket neither measures nor encodes the text again for every agent.
    expect(Buffer.isBuffer(requestFrame(req))).toBe(true);
    const text = requestText(req);
    expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(req)));
    expect(fastBatch(JSON.parse(text).params)).not.toBeNull();
  });

  it("makes the changes' JSON once per array: a second request with the same array reuses it", () => {
    const shared = [...changes];
    const first = requestText({ jsonrpc: "2.0", method: PeerMethod.Batch, params: { origin: REPLICA_A, after: 0, upTo: 2, changes: shared }, id: 1 });
    // Arrays are immutable once sent; changing one afterwards shows that its text was kept.
    shared.pop();
    const second = requestText({ jsonrpc: "2.0", method: PeerMethod.Batch, params: { origin: REPLICA_A, after: 0, upTo: 2, changes: shared }, id: 2 });
    expect(JSON.parse(second).params.changes).toEqual(JSON.parse(first).params.changes);
    expect(JSON.parse(second).params.changes).toHaveLength(2);
    expect(JSON.parse(second).id).toBe(2);
    // A fresh array is encoded afresh.
    const third = requestText({ jsonrpc: "2.0", method: PeerMethod.Batch, params: { origin: REPLICA_A, after: 0, upTo: 1, changes: [...shared] }, id: "x" });
    expect(JSON.parse(third)).toMatchObject({ id: "x", params: { upTo: 1 } });
    expect(JSON.parse(third).params.changes).toHaveLength(1);
  });

  it("leaves other requests and notifications to JSON.stringify", () => {
    const status = { jsonrpc: "2.0" as const, method: PeerMethod.Status, params: { vv: { [REPLICA_A]: 3 } } };
    expect(requestText(status)).toBe(JSON.stringify(status));
    const pull = { jsonrpc: "2.0" as const, method: PeerMethod.Pull, params: { vv: {}, limit: 10 }, id: 3 };
    expect(requestText(pull)).toBe(JSON.stringify(pull));
    // A batch notification (no id) and a batch with fields this encoder does not know keep their shape.
    const note = { jsonrpc: "2.0" as const, method: PeerMethod.Batch, params: { origin: REPLICA_A, after: 0, upTo: 2, changes } };
    expect(JSON.parse(requestText(note))).toEqual(JSON.parse(JSON.stringify(note)));
    const extra = { jsonrpc: "2.0" as const, method: PeerMethod.Batch, params: { origin: REPLICA_A, after: 0, upTo: 2, changes, more: 1 }, id: 4 };
    expect(requestText(extra)).toBe(JSON.stringify(extra));
  });
});
