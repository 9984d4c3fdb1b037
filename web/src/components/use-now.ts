import { useEffect, useState } from "preact/hooks";

/** Unix seconds, refreshed every second while the component is shown (for expiry countdowns). */
export function useNowSec(): number {
  const [now, setNow] = useState(() => Math.floor(Date.now() / 1000));
  useEffect(() => {
    const t = setInterval(() => setNow(Math.floor(Date.now() / 1000)), 1000);
    return () => clearInterval(t);
  }, []);
  return now;
}
