/**
 * The agent's clock as this page sees it. Expiries are the agent's (it decides what is live), and a
 * browser's clock may be minutes off: counted down against it, live bindings would read "expired".
 * Each answer that carries the agent's time (`nowSec`) sets the offset; until one has, it is 0.
 */
let offsetSec = 0;

export function observeServerNow(nowSec: unknown): void {
  if (typeof nowSec === "number" && Number.isFinite(nowSec)) offsetSec = nowSec - Date.now() / 1000;
}

/** Unix seconds on the agent's clock. */
export function serverNowSec(): number {
  return Math.floor(Date.now() / 1000 + offsetSec);
}
