/** Hash routes: the agent serves one index.html, so navigation never needs the server. */
export type Route =
  | { page: "aliases" }
  | { page: "locations" }
  | { page: "binding"; aor: string; contact: string }
  | { page: "cluster" };

export function parseRoute(hash: string): Route {
  const [path = "", query = ""] = hash.replace(/^#/, "").split("?", 2);
  const q = new URLSearchParams(query);
  switch (path) {
    case "/locations":
      return { page: "locations" };
    case "/binding": {
      const aor = q.get("aor");
      const contact = q.get("contact");
      return aor && contact ? { page: "binding", aor, contact } : { page: "locations" };
    }
    case "/cluster":
      return { page: "cluster" };
    default:
      return { page: "aliases" };
  }
}

export function routeHref(r: Route): string {
  if (r.page === "binding") return `#/binding?${new URLSearchParams({ aor: r.aor, contact: r.contact }).toString()}`;
  return `#/${r.page}`;
}
