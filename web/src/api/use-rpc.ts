/** Preact glue for the RPC client: a context, and a hook for a list that follows live changes. */
import { createContext } from "preact";
import { useContext, useEffect, useRef, useState } from "preact/hooks";
import type { RpcError } from "../../../agent/contract/errors.js";
import { ApiNotification, type ListResult } from "../../../agent/contract/api-protocol.js";
import type { Change, RecordKind } from "../../../agent/contract/records.js";
import type { RpcClient } from "./rpc-client.js";
import { observeServerNow } from "../lib/server-clock.js";

export const RpcContext = createContext<RpcClient | null>(null);

export function useRpc(): RpcClient {
  const c = useContext(RpcContext);
  if (!c) throw new Error("useRpc outside a signed-in page");
  return c;
}

/**
 * Calls `onChange` (at most once per `debounceMs`) when changes of `kind` arrive over the
 * subscription, and after a reconnect, when some may have been missed.
 */
export function useLiveChanges(kind: RecordKind, onChange: () => void, debounceMs = 300): void {
  const client = useRpc();
  const latest = useRef(onChange);
  latest.current = onChange;
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poke = () => {
      if (timer === undefined) timer = setTimeout(() => ((timer = undefined), latest.current()), debounceMs);
    };
    const offN = client.onNotification((n) => {
      if (n.method !== ApiNotification.ChangesApplied) return;
      // The client subscribes to summaries (counts by kind); whole changes count the same.
      const p = n.params as { counts?: Partial<Record<RecordKind, number>>; changes?: Change[] } | null;
      if ((p?.counts?.[kind] ?? 0) > 0 || (p?.changes ?? []).some((c) => c.kind === kind)) poke();
    });
    const offS = client.onState((s) => s === "resumed" && poke());
    return () => {
      clearTimeout(timer);
      offN();
      offS();
    };
  }, [client, kind, debounceMs]);
}

export interface PageQuery {
  method: string;
  search: string;
  after: string;
  limit: number;
}

/**
 * Fetches one page; refetches when the query changes, on `reload()`, and at most once per
 * `refreshMs` while changes of `kind` arrive. `data` stays the last page received while the next
 * loads; `current` says whether it answers the query as it is now.
 */
export function usePage<T>(kind: RecordKind, q: PageQuery, refreshMs = 300) {
  const client = useRpc();
  const key = JSON.stringify([q.method, q.search, q.after, q.limit]);
  const [answer, setAnswer] = useState<{ key: string; data: ListResult<T> } | null>(null);
  // With the query it is about: one of the search before says nothing of the page now on its way.
  const [error, setError] = useState<{ key: string; message: string } | null>(null);
  const [tick, setTick] = useState(0);
  useLiveChanges(kind, () => setTick((t) => t + 1), refreshMs);
  useEffect(() => {
    let stale = false;
    client
      .call<ListResult<T>>(q.method, { search: q.search, after: q.after, limit: q.limit })
      .then((r) => {
        observeServerNow(r.nowSec);
        if (stale) return;
        setAnswer({ key, data: r });
        setError(null);
      })
      .catch((e: RpcError) => !stale && setError({ key, message: e.message }));
    return () => {
      stale = true;
    };
  }, [client, key, tick]);
  return { data: answer?.data ?? null, current: answer?.key === key, error: error?.key === key ? error.message : null, reload: () => setTick((t) => t + 1) };
}
