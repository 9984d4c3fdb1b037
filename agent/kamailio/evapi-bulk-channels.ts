/**
 * Several evapi bulk channels (evapi-bulk.ts) as one, each call on the next usable channel in turn.
 * evapi runs every connection's frames in its one dispatcher process, so this does not add Kamailio
 * workers: it lets Kamailio hold `count` times the bytes one channel may have in flight (24 KB, see
 * evapi-bulk.ts's header), so that it still has work queued while the agent spends a longer turn of
 * its event loop elsewhere (planning the next page of a reload, a garbage collection).
 */
import type { RpcParams } from "./jsonrpcs-wire.js";
import { openEvapiBulk, type EvapiBulkOptions, type EvapiBulkRpc } from "./evapi-bulk.js";

/**
 * Opens `count` channels as one. Channels that cannot be opened are left out with a warning; none
 * opened throws the first one's error.
 */
export async function openEvapiBulkChannels(opts: EvapiBulkOptions, count: number): Promise<EvapiBulkRpc> {
  const opened = await Promise.allSettled(Array.from({ length: count }, () => openEvapiBulk(opts)));
  const channels = opened.flatMap((o) => (o.status === "fulfilled" ? [o.value] : []));
  const failed = opened.flatMap((o) => (o.status === "rejected" ? [o.reason as Error] : []));
  if (channels.length === 0) throw failed[0]!;
  if (failed.length > 0) opts.log.warn({ err: failed[0]!.message, opened: channels.length, wanted: count }, "some evapi bulk channels did not open; reloading through the others");
  if (!channels.every((c) => c.stats().batched)) {
    opts.log.warn("Kamailio's include predates batch frames: the reload runs in evapi's one dispatcher process, about a quarter slower; regenerate the include with `locmesh kamailio-cfg` and restart Kamailio");
  }
  return spreadBulk(channels);
}

/** One EvapiBulkRpc over several: calls go round-robin to the channels still usable. */
export function spreadBulk(channels: readonly EvapiBulkRpc[]): EvapiBulkRpc {
  if (channels.length === 1) return channels[0]!;
  let turn = 0;
  return {
    call<T>(method: string, params?: RpcParams): Promise<T> {
      for (let tried = 0; tried < channels.length; tried++) {
        const ch = channels[turn++ % channels.length]!;
        if (ch.usable()) return ch.call<T>(method, params);
      }
      // None is usable: the first says why (a transient error, so the caller goes through jsonrpcs).
      return channels[0]!.call<T>(method, params);
    },
    async close() {
      await Promise.all(channels.map((c) => c.close()));
    },
    usable: () => channels.some((c) => c.usable()),
    stats: () => {
      const all = channels.map((c) => c.stats());
      const sum = (k: "calls" | "chunks" | "errors"): number => all.reduce((n, s) => n + s[k], 0);
      return { calls: sum("calls"), chunks: sum("chunks"), errors: sum("errors"), batched: all.every((s) => s.batched) };
    },
  };
}

