/**
 * Under the header while the connection is down: why (the agent stopping, a drop, the last redial's
 * error) and when the next try is, with a button that tries at once, for whoever just brought the
 * agent back and does not want to wait out the back-off.
 */
import { useEffect, useState } from "preact/hooks";
import type { Reconnecting, RpcClient } from "../api/rpc-client.js";

export function ReconnectNote(props: { client: Pick<RpcClient, "reconnecting" | "retryNow"> }) {
  const [down, setDown] = useState<Reconnecting | null>(props.client.reconnecting());
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const tick = () => {
      setDown(props.client.reconnecting());
      setNow(Date.now());
    };
    const t = setInterval(tick, 250);
    return () => clearInterval(t);
  }, [props.client]);
  if (!down) return null;
  const inSec = down.nextTryAt === null ? null : Math.max(1, Math.ceil((down.nextTryAt - now) / 1000));
  return (
    <div class="conn-note" data-testid="reconnect-note">
      <span>Not connected: {down.why.replace(/\.$/, "")}. {inSec === null ? "Trying again now…" : `Trying again in ${inSec} s.`}</span>
      {inSec !== null && (
        <button type="button" class="link" onClick={() => {
          props.client.retryNow();
          setDown(props.client.reconnecting());
        }}>Try now</button>
      )}
    </div>
  );
}
