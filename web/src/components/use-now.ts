import { useEffect, useState } from "preact/hooks";
import { serverNowSec } from "../lib/server-clock.js";

/** Unix seconds on the agent's clock, refreshed every second while shown (for expiry countdowns). */
export function useNowSec(): number {
  const [now, setNow] = useState(serverNowSec);
  useEffect(() => {
    const t = setInterval(() => setNow(serverNowSec()), 1000);
    return () => clearInterval(t);
  }, []);
  return now;
}
