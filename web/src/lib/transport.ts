/**
 * Whether the page's token and edits cross a network in the clear: a page served over plain HTTP
 * from an address other than this machine's own (the agent's API listens on 127.0.0.1 by default;
 * one bound to another address without a TLS proxy in front sends the token unencrypted).
 */
export function clearTextWarning(location: { protocol: string; hostname: string }): string | null {
  if (location.protocol !== "http:") return null;
  const host = location.hostname.replace(/^\[|\]$/g, "").toLowerCase();
  const loopback = host === "localhost" || host.endsWith(".localhost") || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
  if (loopback) return null;
  return `This page came over plain HTTP from ${location.hostname}: the API token, and every change made here, cross the network unencrypted. ` +
    "Reach the agent through an HTTPS reverse proxy, or an SSH tunnel to its 127.0.0.1 port.";
}
