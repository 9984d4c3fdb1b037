/**
 * Call-forward churn for the drills: alias.set and alias.remove through the agents' JSON-RPC API,
 * spread over the nodes, each call recorded in the ledger with its outcome.
 */
import type { Ledger, Outcome } from "./ledger.js";

export interface AliasTarget {
  id: string;
  apiUrl: string;
  token: string;
}

export interface AliasTrafficOptions {
  nodes: readonly AliasTarget[];
  domain: string;
  /** Calls per second in all. */
  rate: number;
  /** Distinct aliases the calls pick from. */
  pool?: number;
  /** Share of calls that remove instead of set. */
  removeShare?: number;
  tag?: string;
  /** Per-call timeout: an unanswered call is "doubt". */
  timeoutMs?: number;
  /** Seeded choices, so a drill is repeatable. */
  seed?: number;
}

export interface AliasTraffic {
  /** Stops issuing calls and waits for those in flight. */
  stop(): Promise<{ calls: number; acked: number; failed: number; doubt: number }>;
}

export function startAliasTraffic(ledger: Ledger, o: AliasTrafficOptions): AliasTraffic {
  const pool = o.pool ?? 200;
  const tag = o.tag ?? "da";
  const timeoutMs = o.timeoutMs ?? 3000;
  let rnd = o.seed ?? 42;
  const next = (n: number): number => {
    rnd = (rnd * 1103515245 + 12345) % 2147483648;
    return rnd % n;
  };
  const inFlight = new Set<Promise<void>>();
  const counts = { calls: 0, acked: 0, failed: 0, doubt: 0 };
  let i = 0;
  const fire = (): void => {
    const node = o.nodes[next(o.nodes.length)]!;
    const alias = `${tag}${next(pool)}@${o.domain}`;
    const remove = next(1000) < (o.removeShare ?? 0.2) * 1000;
    const target = remove ? null : `sip:${tag}t${i++}@${o.domain}`;
    const sentMs = Date.now();
    const p = call(node, remove ? "alias.remove" : "alias.set", remove ? { alias: `sip:${alias}` } : { alias: `sip:${alias}`, target }, timeoutMs).then((outcome) => {
      counts.calls++;
      counts[outcome]++;
      ledger.add({ kind: "alias", key: alias, sub: "", value: target, node: node.id, sentMs, doneMs: outcome === "doubt" ? Infinity : Date.now(), outcome });
    });
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  };
  const timer = setInterval(fire, 1000 / o.rate);
  return {
    async stop() {
      clearInterval(timer);
      await Promise.all([...inFlight]);
      return { ...counts };
    },
  };
}

/** acked: a result; failed: an error answer or a refused connection; doubt: no answer. */
async function call(node: AliasTarget, method: string, params: unknown, timeoutMs: number): Promise<Outcome> {
  let res: Response;
  try {
    res = await fetch(`${node.apiUrl}/rpc`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${node.token}` },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    const code = (err as { cause?: { code?: string } }).cause?.code;
    return code === "ECONNREFUSED" ? "failed" : "doubt";
  }
  try {
    const body = (await res.json()) as { result?: unknown; error?: unknown };
    return body.error === undefined && res.ok ? "acked" : "failed";
  } catch {
    return "doubt";
  }
}
