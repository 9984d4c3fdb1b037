/** One binding in full, with a live expiry countdown. Every value is SIP data: rendered as text only. */
import { useEffect, useState } from "preact/hooks";
import type { RpcError } from "../../../agent/contract/errors.js";
import { ApiMethod } from "../../../agent/contract/api-protocol.js";
import type { Location } from "../../../agent/contract/records.js";
import { useLiveChanges, useRpc } from "../api/use-rpc.js";
import { useNowSec } from "../components/use-now.js";
import { expiryText, formatQ } from "../lib/format.js";
import { routeHref } from "../lib/route.js";
import { observeServerNow } from "../lib/server-clock.js";

export function BindingPage(props: { aor: string; contact: string }) {
  const client = useRpc();
  const now = useNowSec();
  const [binding, setBinding] = useState<Location | null | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);
  const [tick, setTick] = useState(0);
  useLiveChanges("loc", () => setTick((t) => t + 1), 1000);

  // Another binding (a link or the address bar changed the route while this page stays mounted):
  // nothing of the previous one may show while it loads, nor its error.
  useEffect(() => {
    setBinding(undefined);
    setError(null);
  }, [props.aor, props.contact]);

  useEffect(() => {
    let stale = false;
    client
      .call<{ bindings: Location[]; nowSec?: number }>(ApiMethod.LocationLookup, { aor: props.aor })
      .then((r) => {
        observeServerNow(r.nowSec);
        if (stale) return;
        setBinding(r.bindings.find((b) => b.contact === props.contact) ?? null);
        setError(null);
      })
      .catch((e: RpcError) => !stale && setError(e.message));
    return () => {
      stale = true;
    };
  }, [client, props.aor, props.contact, tick]);

  const rows: [string, string][] = binding
    ? [
        ["Contact", binding.contact],
        ["Expires", `${expiryText(binding.expires, now)}${binding.expires ? ` (${new Date(binding.expires * 1000).toLocaleString(undefined, { timeZoneName: "short" })})` : ""}`],
        ["Owner node", binding.owner],
        ["User agent", binding.userAgent || "—"],
        ["Path", binding.path || "—"],
        ["Received", binding.received || "—"],
        ["Socket", binding.socket || "—"],
        ["q", formatQ(binding.q)],
        ["Call-ID", binding.callid || "—"],
        ["CSeq", String(binding.cseq)],
        ["Instance", binding.instance || "—"],
        ["Reg-Id", String(binding.regId)],
        ["ruid", binding.ruid || "—"],
      ]
    : [];

  return (
    <section aria-labelledby="page-title">
      <p><a href={routeHref({ page: "locations" })}>← All locations</a></p>
      <p class="eyebrow">Binding of</p>
      <h1 id="page-title" class="mono break">{props.aor}</h1>
      {error && <p class="error" role="alert">{error}</p>}
      {binding === null && <p class="empty card">This contact is no longer registered for {props.aor}.</p>}
      {binding && (
        <dl class="card details">
          {rows.map(([k, v]) => (
            <div class="detail" key={k}>
              <dt>{k}</dt>
              <dd class="mono break" data-field={k}>{v}</dd>
            </div>
          ))}
        </dl>
      )}
    </section>
  );
}
