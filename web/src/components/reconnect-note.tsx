/**
 * Under the header while the connection is down: why (the agent stopping, a drop, the last redial's
 * error) and when the next try is, with a button that tries at once, for whoever just brought the
 * agent back and does not want to wait out the back-off.
 */
import { useEffect, useState } from "preact/hooks";
import type { RpcClient } from "../api/rpc-client.js";

export function ReconnectNote(props: { client: Pick<RpcClient, "reconnecting" | "retryNow"> }) {
  // Read from the client at each render: a tick re-renders for the countdown and the next reason.
  const [, setTick] = useState(0);
  useEffect(() => {
    const t = setInterval(() => setTick((n) => n + 1), 250);
    return () => clearInterval(t);
  }, []);
  const down = props.client.reconnecting();
  if (!down) return null;
  const inSec = down.nextTryAt === null ? null : Math.max(1, Math.ceil((down.nextTryAt - Date.now()) / 1000));
  return (
    <div class="conn-note" data-testid="reconnect-note">
      <span>Not connected: {down.why.replace(/\.$/, "")}. {inSec === null ? "Trying again now…" : `Trying again in ${inSec} s.`}</span>
      {inSec !== null && (
        <button type="button" class="link" onClick={() => {
          props.client.retryNow();
          setTick((n) => n + 1);
        }}>Try now</button>
      )}
    </div>
  );
}
