/**
 * Which token the agent says hello with on the evapi bulk channel (evapi-bulk.ts). The include
 * holds the token of the cluster key it was generated with (evapiBulkToken), and Kamailio reads
 * the include only when it starts. After the key was switched (README, "Rotating the cluster key
 * and API token"), a Kamailio whose include was generated with the old key still expects the old
 * key's token until the include is regenerated and Kamailio restarted. So the agent tries the
 * token of each key it holds: the one Kamailio took last time first, then its own key's, then the
 * accepted ones', and says so when Kamailio took another than its own key's.
 */
import type { Logger } from "../ops/logger.js";
import { keyId, type KeyRing } from "../ops/key-ring.js";
import {
  EvapiBulkTokenRefusedError, EvapiBulkUnavailableError, evapiBulkToken, openEvapiBulk, type EvapiBulkOptions, type EvapiBulkRpc,
} from "./evapi-bulk.js";
import { openEvapiBulkChannels, spreadBulk } from "./evapi-bulk-channels.js";

export interface BulkToken {
  token: string;
  /** The id of the cluster key it is made from (ops/key-ring.ts). */
  keyId: string;
  /** Made from this node's own key (mesh.secret), the one `locmesh kamailio-cfg` puts into the include. */
  own: boolean;
}

/** The bulk tokens of the cluster keys `keys` holds now, the own key's first. */
export function bulkTokens(keys: Pick<KeyRing, "current">, nodeId: string): BulkToken[] {
  const { own, accepted } = keys.current();
  return [own, ...accepted].map((key) => ({ token: evapiBulkToken(key, nodeId), keyId: keyId(key), own: key === own }));
}

/**
 * Opens `count` bulk channels with the first of `tokens()` that Kamailio takes. Fails as
 * openEvapiBulk does (the reload then goes over jsonrpcs); when every token is refused, the error
 * names the keys they are made from.
 */
export function createBulkOpener(deps: {
  tokens: () => readonly BulkToken[];
  options: Omit<EvapiBulkOptions, "token">;
  count: number;
  log: Logger;
}): () => Promise<EvapiBulkRpc> {
  const log = deps.log.child({ part: "bulk" });
  /** The token Kamailio took last time: tried first, so a Kamailio that takes only an old key's logs no refusal per reload. */
  let lastTaken: string | null = null;
  return async () => {
    const all = deps.tokens();
    const tried = [...all.filter((t) => t.token === lastTaken), ...all.filter((t) => t.token !== lastTaken)];
    for (const t of tried) {
      let first: EvapiBulkRpc;
      try {
        first = await openEvapiBulk({ ...deps.options, token: t.token });
      } catch (err) {
        if (err instanceof EvapiBulkTokenRefusedError) continue;
        throw err;
      }
      lastTaken = t.token;
      if (!t.own) {
        const own = all.find((o) => o.own)?.keyId;
        log.warn(
          { key: t.keyId, own },
          `Kamailio took the evapi bulk channel's token of accepted cluster key ${t.keyId}, not that of this node's own (mesh.secret, ${own}): ` +
            "its include was generated with that key. Regenerate the include (locmesh kamailio-cfg --config …) and load it at the next convenient Kamailio restart, " +
            "before that key leaves mesh.acceptedSecrets (after that a restarted Kamailio is refilled over jsonrpcs, more slowly)",
        );
      }
      if (deps.count <= 1) return first;
      const rest = await openEvapiBulkChannels({ ...deps.options, token: t.token }, deps.count - 1).catch((err: unknown) => {
        log.warn({ err: (err as Error).message, opened: 1, wanted: deps.count }, "some evapi bulk channels did not open; reloading through the others");
        return null;
      });
      return rest ? spreadBulk([first, rest]) : first;
    }
    const keys = tried.map((t) => t.keyId).join(", ");
    throw new EvapiBulkUnavailableError(
      `Kamailio refused the evapi bulk channel's token of ${tried.length === 1 ? "this node's cluster key" : `each of the ${tried.length} cluster keys this node holds`} (${keys}): ` +
        "the include was generated for another node or cluster key; regenerate it with `locmesh kamailio-cfg`",
    );
  };
}
