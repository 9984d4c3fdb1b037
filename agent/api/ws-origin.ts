/**
 * Which web pages may open the API's WebSocket. A browser sends `Origin` on every WebSocket it
 * opens, and, unlike a POST with a JSON body, lets any page open one to any address: without this
 * check a page the admin happens to visit could open sockets to the API and send wrong
 * `auth.login` tokens, locking the admin's address out (or, from 127.0.0.1, which is never held
 * off, guess tokens without limit). Taken: a page the operator lists in `api.allowedOrigins`, and
 * the web UI's own page opened by IP address or as localhost (its origin the Host it asked for, or
 * behind a reverse proxy that rewrites Host, its X-Forwarded-Host). A page at a host name must be
 * listed: another site's page can make its own name resolve to this host (DNS rebinding), and then
 * its Origin and Host agree. Clients that are not browsers (the CLI, scripts) send no Origin.
 */
import type { IncomingHttpHeaders } from "node:http";
import { isIP } from "node:net";

/** Null when the upgrade may go on; else why not, for the log. */
export function originRefusal(headers: IncomingHttpHeaders, allowed: ReadonlySet<string>): string | null {
  const origin = headers.origin;
  if (origin === undefined) return null;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return `its Origin ${JSON.stringify(origin)} is no origin`;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return `its Origin ${JSON.stringify(origin)} is not an http(s) page`;
  if (allowed.has(url.origin)) return null;
  const own = [headers.host, first(headers["x-forwarded-host"])].filter((h): h is string => h !== undefined && h !== "");
  if (!own.some((h) => sameHost(url, h))) {
    return `a page at ${url.origin} is not this API's own (Host ${headers.host ?? "none"}); a reverse proxy that serves the web UI there and rewrites Host: list ${url.origin} in api.allowedOrigins`;
  }
  if (!byAddress(url.hostname)) {
    return `a page at ${url.origin} is opened by host name, which another site's page can make resolve to this host (DNS rebinding): list ${url.origin} in api.allowedOrigins to use the web UI there, or open it by IP address`;
  }
  return null;
}

/** An IP literal (IPv6 in brackets, as URL.hostname gives it) or localhost: no name another site can point here. */
const byAddress = (hostname: string): boolean => hostname === "localhost" || isIP(hostname.replace(/^\[(.*)\]$/, "$1")) !== 0;

/** The configured origins as URL.origin spells them (scheme, host in lower case, default port left out). */
export function allowedOrigins(list: readonly string[]): ReadonlySet<string> {
  return new Set(list.map((o) => new URL(o).origin));
}

const first = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v?.split(",")[0]?.trim());

/** The Host header names the page's host and port (the port left out when it is the scheme's default). */
function sameHost(page: URL, host: string): boolean {
  try {
    return new URL(`${page.protocol}//${host}`).host === page.host;
  } catch {
    return false;
  }
}
