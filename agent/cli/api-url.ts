/**
 * The client commands' check of the API URL (--url, LOCMESH_API_URL, a config's api.listen): one
 * the CLI can dial, or a usage error that names the part that is wrong and where the URL came from.
 * The WHATWG URL parser only says "Invalid URL" whatever the fault (a port that is no number, a
 * missing host, a stray space), so a URL it refuses is taken apart here to say which.
 */
import { FETCH_BAD_PORTS } from "../config/config-schema.js";

export const DEFAULT_API_URL = "http://127.0.0.1:7180";

const GIVE = `give the agent's API address, e.g. ${DEFAULT_API_URL}`;

/** Null when `url` can be dialled; else what is wrong with it and what to do, as a sentence's end. */
export function apiUrlFault(url: string): string | null {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1]?.toLowerCase();
  if (scheme !== "http" && scheme !== "https") return `is not an http:// or https:// URL; ${GIVE}`;
  let parsed: URL | null = null;
  try {
    parsed = new URL(url);
  } catch {
    parsed = null;
  }
  if (parsed === null) return `${faultOfUnparsed(url)}; ${GIVE}`;
  if (parsed.hostname === "") return `has no host; ${GIVE}`;
  // fetch refuses a URL with credentials ("Request cannot be constructed from a URL that includes
  // credentials"), which the client took for an agent not reachable, printing the password. The
  // API takes a token, not a user and password.
  if (parsed.username !== "" || parsed.password !== "") {
    const what = parsed.password === "" ? "a user name" : "a user name and password";
    return `has ${what} in it, which the API does not take (fetch refuses to send them): give the API token with --token (or LOCMESH_API_TOKEN) and the URL without them, e.g. ${parsed.origin}`;
  }
  const port = Number(parsed.port || (parsed.protocol === "https:" ? 443 : 80));
  if (port === 0) return `has port 0, which cannot be dialled; give the port the agent's api.listen uses`;
  if (FETCH_BAD_PORTS.has(port)) return `uses port ${port}, which fetch and browsers refuse to dial; move api.listen to another port (the default is 7180)`;
  return null;
}

/** Why the URL parser refused `url`, an http(s):// one: its port, its host, or something else. */
function faultOfUnparsed(url: string): string {
  const authority = /^[a-z]+:\/\/([^/?#]*)/i.exec(url)?.[1] ?? "";
  const hostPort = authority.slice(authority.lastIndexOf("@") + 1);
  // An IPv6 address is in brackets; the port follows the closing one (or the only colon).
  const close = hostPort.startsWith("[") ? hostPort.indexOf("]") : -1;
  if (hostPort.startsWith("[") && close < 0) return `has an IPv6 host without its closing bracket (${JSON.stringify(hostPort)}); write it as [::1]:7180`;
  const colon = hostPort.indexOf(":", close + 1);
  const host = colon < 0 ? hostPort : hostPort.slice(0, colon);
  const port = colon < 0 ? null : hostPort.slice(colon + 1);
  if (port !== null && !(/^\d+$/.test(port) && Number(port) <= 65_535)) {
    return `has port ${JSON.stringify(port)}, which is not a number from 1 to 65535`;
  }
  if (host === "") return "has no host";
  return `has a host the URL parser refuses (${JSON.stringify(host)}): a name, an IPv4 address or an IPv6 one in brackets, with no spaces`;
}
