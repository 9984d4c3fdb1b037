/**
 * Problems that span fields of the agent config: a peer listed twice or with this node's own id,
 * one address listed twice in `mesh.peers` or `hub.urls`, and aliases in alias_db's table with no
 * database to write them into. They are checked on the raw input,
 * not in a zod refine, because zod skips an object's refinements once any of its fields failed,
 * and the point is to report everything in one go. Values the schema refuses (not a string, not a
 * ws:// URL) are left to the schema's own message. listenClash, for agents and hubs, runs on what
 * the schema parsed (the defaults filled in), so it runs only once the schema is satisfied.
 */
import { redactUrl } from "../ops/redact-url.js";

export interface FieldProblem {
  path: string;
  message: string;
}

type Raw = Record<string, unknown>;

const recordOf = (v: unknown): Raw | undefined => (v && typeof v === "object" && !Array.isArray(v) ? (v as Raw) : undefined);

export function crossFieldProblems(raw: Raw): FieldProblem[] {
  const mesh = recordOf(raw["mesh"]);
  const hub = recordOf(raw["hub"]);
  const peers = Array.isArray(mesh?.["peers"]) ? (mesh["peers"] as unknown[]) : [];
  const hubUrls = Array.isArray(hub?.["urls"]) ? (hub["urls"] as unknown[]) : [];
  return [
    ...aliasDbProblems(recordOf(raw["kamailio"])),
    ...peerIdProblems(peers, raw["nodeId"]),
    ...sameAddress(
      peers.map((p) => recordOf(p)?.["url"]),
      (i) => `mesh.peers[${i}].url`,
      "each peer is another node with its own address: correct the URL of the one that is wrong (a dial that reaches another node than the id it names is refused)",
    ),
    ...sameAddress(
      hubUrls,
      (i) => `hub.urls[${i}]`,
      "list each hub once: a hub listed twice is dialed twice in every failover round, and an agent on its later entry keeps leaving it to fail back to the first",
    ),
  ];
}

/**
 * alias_db has no RPC (kamailio-5.6.md §5): the agent writes `dbaliases` rows straight into
 * Kamailio's database. Without one every alias write would be refused and skipped.
 */
function aliasDbProblems(kamailio: Raw | undefined): FieldProblem[] {
  if (kamailio?.["aliases"] !== "dbaliases" || (kamailio["db"] !== undefined && kamailio["db"] !== null)) return [];
  return [{
    path: "kamailio.aliases",
    message: "is dbaliases, which needs kamailio.db: alias_db has no RPC, so the agent writes its table in Kamailio's database. " +
      "Set kamailio.db.url to alias_db's db_url, or use aliases: usrloc (a usrloc \"aliases\" domain, written over jsonrpcs)",
  }];
}

function peerIdProblems(peers: readonly unknown[], nodeId: unknown): FieldProblem[] {
  return nodeIdListProblems(peers.map((p) => recordOf(p)?.["id"]), nodeId, (i) => `mesh.peers[${i}].id`, {
    own: (id) => `is this node's own id (${id}); a node does not peer with itself`,
    twice: (first, id) => `duplicates mesh.peers[${first}].id (${id})`,
  });
}

/**
 * Node ids in a list (an agent's mesh.peers, a hub's mesh.agents) that name the node itself, or an
 * earlier entry again: one problem each, worded by `say`. Ids that are not strings are left to the
 * schema's message.
 */
export function nodeIdListProblems(
  ids: readonly unknown[], nodeId: unknown, pathOf: (i: number) => string,
  say: { own: (id: string) => string; twice: (first: number, id: string) => string },
): FieldProblem[] {
  const out: FieldProblem[] = [];
  const seen = new Map<string, number>();
  ids.forEach((id, i) => {
    if (typeof id !== "string") return;
    if (id === nodeId) out.push({ path: pathOf(i), message: say.own(id) });
    const first = seen.get(id);
    if (first !== undefined) out.push({ path: pathOf(i), message: say.twice(first, id) });
    else seen.set(id, i);
  });
  return out;
}

/** A problem for each URL that reaches the same address as an earlier one (addressOf). */
function sameAddress(urls: readonly unknown[], pathOf: (i: number) => string, remedy: string): FieldProblem[] {
  const out: FieldProblem[] = [];
  const seen = new Map<string, number>();
  urls.forEach((url, i) => {
    const address = typeof url === "string" ? addressOf(url) : null;
    if (address === null) return;
    const first = seen.get(address);
    if (first === undefined) {
      seen.set(address, i);
      return;
    }
    const written = url === urls[first] ? "" : `, written ${JSON.stringify(redactUrl(urls[first] as string))} there`;
    out.push({ path: pathOf(i), message: `reaches the same address as ${pathOf(first)} (${address}${written}); ${remedy}` });
  });
  return out;
}

/**
 * Where a ws:// or wss:// URL leads, as "host:port" with the scheme's default port filled in,
 * plus its path when it is not the peer endpoint the mesh dials for "/" (mesh.ts, peerUrl): two
 * nodes behind one reverse proxy may differ by path alone. The scheme does not count: one
 * host:port serves either ws or wss, not both. Null for what is not such a URL (the schema says so).
 */
export function addressOf(url: string): string | null {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return null;
  }
  if ((u.protocol !== "ws:" && u.protocol !== "wss:") || u.hostname === "") return null;
  const port = u.port || (u.protocol === "wss:" ? "443" : "80");
  const path = u.pathname.replace(/\/+$/, "");
  return `${u.hostname}:${port}${path === "" || path === "/peer" ? "" : path}`;
}

const WILDCARDS = new Set(["0.0.0.0", "::", "[::]"]);

/**
 * `mesh.listen` and `api.listen` on one port where both would bind the same address (the same
 * host, or either on every address): the second bind fails at start with EADDRINUSE, which names
 * neither setting. Port 0 (the system picks a free port, tests do) never clashes.
 */
export function listenClash(mesh: { host: string; port: number }, api: { host: string; port: number }): FieldProblem | null {
  if (mesh.port === 0 || mesh.port !== api.port) return null;
  if (mesh.host !== api.host && !WILDCARDS.has(mesh.host) && !WILDCARDS.has(api.host)) return null;
  return {
    path: "api.listen",
    message: `is on port ${api.port}, as mesh.listen (${mesh.host}:${mesh.port}): the API and the mesh need a port each; ` +
      `move one (the defaults are 7100 for the mesh, 7180 for the API)`,
  };
}
