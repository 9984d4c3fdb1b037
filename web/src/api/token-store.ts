/**
 * The API token lives in sessionStorage: it goes with the tab, is never sent by the browser on its
 * own (unlike a cookie, so no cross-site request or WebSocket can borrow it), and the strict CSP
 * plus text-only rendering keep scripts that could read it off the page.
 */
const KEY = "locmesh.apiToken";

export interface TokenStore {
  get(): string | null;
  set(token: string): void;
  clear(): void;
}

export function createTokenStore(storage: Pick<Storage, "getItem" | "setItem" | "removeItem">): TokenStore {
  return {
    get: () => storage.getItem(KEY),
    set: (t) => storage.setItem(KEY, t),
    clear: () => storage.removeItem(KEY),
  };
}
