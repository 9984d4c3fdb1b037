/**
 * The JSON-RPC dispatch shared by the peer protocol and the local API (agent/rpc/server.ts), fed
 * the frames the hostile-input drill found: every non-request gets an error answer, never a
 * throw or silence, and malformed envelopes never reach a handler.
 */
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { ErrorCode } from "../../agent/contract/errors.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { publishParams } from "../../agent/contract/api-protocol.js";
import { PEER_PARAMS, PeerMethod } from "../../agent/contract/protocol.js";
import { MAX_BATCH, createRpcServer, describeZodError, parseFrame, toRpcError, type RpcAnswer } from "../../agent/rpc/server.js";

function server() {
  const calls: string[] = [];
  let running = 0;
  let maxRunning = 0;
  const rpc = createRpcServer<object>({ log: silentLogger() });
  rpc.method("status", z.strictObject({}), () => {
    calls.push("status");
    return { ok: true };
  });
  rpc.method("echo", z.strictObject({ x: z.number() }), async (p) => {
    running++;
    maxRunning = Math.max(maxRunning, running);
    await new Promise((r) => setTimeout(r, 1));
    running--;
    calls.push(`echo ${p.x}`);
    return p.x;
  });
  return { rpc, calls, maxRunning: () => maxRunning };
}

const req = (method: string, params?: unknown, id: unknown = 1) => ({ jsonrpc: "2.0", id, method, ...(params === undefined ? {} : { params }) });

function errorOf(answer: RpcAnswer): { id: unknown; code: number } {
  const one = Array.isArray(answer) ? answer[0] : answer;
  if (!one || !("error" in one) || !one.error) throw new Error(`expected an error answer, got ${JSON.stringify(answer)}`);
  return { id: one.id, code: one.error.code };
}

describe("createRpcServer().receive", () => {
  it("answers a batch holding null with Invalid Request instead of throwing", async () => {
    const { rpc } = server();
    const answer = await rpc.receive([null], {});
    expect(Array.isArray(answer)).toBe(true);
    expect(errorOf(answer)).toEqual({ id: null, code: ErrorCode.InvalidRequest });
  });

  it.each([5, "x", true, {}, { foo: 1 }, { jsonrpc: "1.0", id: 3, method: "status" }, { jsonrpc: "2.0", id: 3, method: 7 }, []])(
    "answers the non-request %j with Invalid Request",
    async (frame) => {
      const { rpc, calls } = server();
      expect((await rpc.receive(frame, {}))).toMatchObject({ error: { code: ErrorCode.InvalidRequest } });
      expect(calls).toEqual([]);
    },
  );

  it.each([{}, [1], { deep: { er: 1 } }, true])("refuses the id %j without running the method or echoing it", async (id) => {
    const { rpc, calls } = server();
    expect(errorOf(await rpc.receive(req("status", {}, id), {}))).toEqual({ id: null, code: ErrorCode.InvalidRequest });
    expect(calls).toEqual([]);
  });

  it("refuses params that are neither an object nor an array, and stays silent for such a notification", async () => {
    const { rpc, calls } = server();
    expect(errorOf(await rpc.receive(req("status", null), {}))).toEqual({ id: 1, code: ErrorCode.InvalidParams });
    expect(errorOf(await rpc.receive(req("status", "x", "a"), {}))).toEqual({ id: "a", code: ErrorCode.InvalidParams });
    expect(await rpc.receive({ jsonrpc: "2.0", method: "status", params: 5 }, {})).toBeNull();
    expect(calls).toEqual([]);
  });

  it(`refuses a batch over ${MAX_BATCH} requests as a whole and serves smaller ones one at a time`, async () => {
    const { rpc, calls, maxRunning } = server();
    const big = Array.from({ length: MAX_BATCH + 1 }, (_, i) => req("echo", { x: i }, i));
    expect(errorOf(await rpc.receive(big, {}))).toEqual({ id: null, code: ErrorCode.InvalidRequest });
    expect(calls).toEqual([]);

    const answer = await rpc.receive([req("echo", { x: 1 }, 1), { jsonrpc: "2.0", method: "echo", params: { x: 2 } }, null, req("echo", { x: 3 }, 3)], {});
    expect(answer).toEqual([
      { jsonrpc: "2.0", id: 1, result: 1 },
      { jsonrpc: "2.0", id: null, error: expect.objectContaining({ code: ErrorCode.InvalidRequest }) },
      { jsonrpc: "2.0", id: 3, result: 3 },
    ]);
    expect(calls).toEqual(["echo 1", "echo 2", "echo 3"]);
    expect(maxRunning()).toBe(1);
  });

  it("still serves well-formed requests and notifications", async () => {
    const { rpc, calls } = server();
    expect(await rpc.receive(req("status", {}, "s"), {})).toEqual({ jsonrpc: "2.0", id: "s", result: { ok: true } });
    expect(await rpc.receive(req("status", undefined, null), {})).toEqual({ jsonrpc: "2.0", id: null, result: { ok: true } });
    expect(await rpc.receive({ jsonrpc: "2.0", method: "status" }, {})).toBeNull();
    expect(errorOf(await rpc.receive(req("nope", {}), {}))).toEqual({ id: 1, code: ErrorCode.MethodNotFound });
    expect(calls).toEqual(["status", "status", "status"]);
  });

  it("names the methods there are when one is unknown, and leaves an unknown notification unanswered", async () => {
    const { rpc } = server();
    const answer = (await rpc.receive(req("stauts", {}), {})) as { error: { message: string } };
    expect(answer.error.message).toBe('no method "stauts"; the methods are echo, status');
    expect(await rpc.receive({ jsonrpc: "2.0", method: "stauts" }, {})).toBeNull();
  });
});

describe("parseFrame", () => {
  it("tells JSON that is no request (null, a number) from text that is not JSON at all", async () => {
    expect(parseFrame("null")).toEqual({ json: null });
    expect(parseFrame(" 5 ")).toEqual({ json: 5 });
    expect(parseFrame("{ nope")).toBeNull();
    expect(parseFrame("")).toBeNull();
    const { rpc } = server();
    expect(errorOf(await rpc.receive(parseFrame("null")!.json, {}))).toEqual({ id: null, code: ErrorCode.InvalidRequest });
  });
});

describe("describeZodError: one text per field", () => {
  const fail = (schema: z.ZodType, value: unknown) => {
    const r = schema.safeParse(value);
    if (r.success) throw new Error("expected the value to be refused");
    return r.error;
  };

  it("tells a field's own bound, not also zod's safe-integer range for every int (the hostile dry run's F14f)", () => {
    const binding = { aor: "sip:a@example.com", contact: "sip:a@192.0.2.1", expires: 1e300 };
    const err = fail(publishParams, { edits: [{ op: "upsert", binding }] });
    expect(describeZodError(err)).toBe("edits.0.binding.expires: Too big: expected number to be <=1099511627776");
    expect(toRpcError(err).message).toBe("invalid params: edits.0.binding.expires: Too big: expected number to be <=1099511627776");
  });

  it("names a field once even when two of zod's checks refuse it, and every other field at fault", () => {
    const change = { kind: "alias", key: "a@example.com", sub: "", value: null, hlc: 1e300, origin: "n1~0123abcd", seq: 0 };
    const text = describeZodError(fail(PEER_PARAMS[PeerMethod.Batch], { origin: "n1~0123abcd", upTo: 1, changes: [change] }));
    expect(text.match(/changes\.0\.hlc/g)).toHaveLength(1);
    expect(text).toContain("changes.0.hlc: Too big: expected number to be <=9007199254740991");
    expect(text).toContain("changes.0.seq: Too small: expected number to be >=1");
  });

  it("keeps an int's safe-range bound when it is the only one, and joins a field's different faults", () => {
    expect(describeZodError(fail(z.object({ n: z.number().int() }), { n: 1e300 }))).toBe("n: Too big: expected int to be <=9007199254740991");
    const two = z.object({ s: z.string().min(5).regex(/^x/, "must start with x") });
    expect(describeZodError(fail(two, { s: "ab" }))).toBe("s: Too small: expected string to have >=5 characters, and must start with x");
  });
});

describe("counting error answers (locmesh_rpc_errors_total)", () => {
  it("counts every error answer: parse errors, invalid requests and batches, invalid params, unknown methods (the hostile dry run's F5)", async () => {
    const codes: number[] = [];
    const rpc = createRpcServer<object>({ log: silentLogger(), onError: (code) => codes.push(code) });
    rpc.method("status", z.strictObject({}), () => ({ ok: true }));
    expect(rpc.parseError().error.code).toBe(ErrorCode.ParseError);
    for (const frame of [{ jsonrpc: "1.0", id: 1, method: "status" }, [], [1, 2], "x", { jsonrpc: "2.0", id: 2, method: "status", params: 5 }, { jsonrpc: "2.0", id: 3, method: "nope" }, { jsonrpc: "2.0", id: 4, method: "status", params: { x: 1 } }]) {
      await rpc.receive(frame, {});
    }
    await rpc.receive({ jsonrpc: "2.0", id: 5, method: "status" }, {}); // no error: not counted
    expect(codes).toEqual([
      ErrorCode.ParseError, ErrorCode.InvalidRequest, ErrorCode.InvalidRequest, ErrorCode.InvalidRequest, ErrorCode.InvalidRequest, ErrorCode.InvalidRequest,
      ErrorCode.InvalidParams, ErrorCode.MethodNotFound, ErrorCode.InvalidParams,
    ]);
  });
});
