/**
 * core-rpc.ts's instance probe (the restart watch): bounded by its own timeout, so a probe caught
 * in flight by a Kamailio restart (its reply never comes) cannot hold the watch for the client's
 * full timeout.
 */
import { describe, expect, it } from "vitest";
import { createCoreRpc } from "../../agent/kamailio/core-rpc.js";
import type { CallOptions, KamailioRpc } from "../../agent/kamailio/jsonrpcs-wire.js";

/** Answers nothing, like a Kamailio that died with the request unread; honours a per-call timeout. */
function deadKamailio(calls: { method: string; opts: CallOptions | undefined }[]): KamailioRpc {
  return {
    call(method, _params, opts) {
      calls.push({ method, opts });
      return new Promise((_resolve, reject) => {
        if (opts?.timeoutMs !== undefined) setTimeout(() => reject(new Error(`${method} timed out`)), opts.timeoutMs);
      });
    },
    close: async () => undefined,
  };
}

describe("createCoreRpc instance()", () => {
  it("gives up after probeTimeoutMs on a Kamailio that does not answer", async () => {
    const calls: { method: string; opts: CallOptions | undefined }[] = [];
    await expect(createCoreRpc({ rpc: deadKamailio(calls), probeTimeoutMs: 20 }).instance()).rejects.toThrow(/timed out/);
    expect(calls.map((c) => [c.method, c.opts?.timeoutMs])).toEqual([["core.psx", 20], ["core.uptime", 20]]);
  });

  it("leaves the client's own timeout alone without probeTimeoutMs", async () => {
    const calls: { method: string; opts: CallOptions | undefined }[] = [];
    void createCoreRpc({ rpc: deadKamailio(calls) }).instance().catch(() => undefined);
    expect(calls.map((c) => c.opts?.timeoutMs)).toEqual([undefined, undefined]);
  });
});
