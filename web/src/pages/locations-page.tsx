/** Registered locations: search by AoR or contact, paged on the server (fine with 100,000+ bindings). */
import { ApiMethod } from "../../../agent/contract/api-protocol.js";
import type { Location } from "../../../agent/contract/records.js";
import { ListCard, usePagedSearch } from "../components/paged-list.js";
import { useNowSec } from "../components/use-now.js";
import { expiryText } from "../lib/format.js";
import { routeHref } from "../lib/route.js";

const PAGE_SIZE = 50;
/** Registrations churn all the time on a busy cluster: refresh the page at most every 2 s. */
const REFRESH_MS = 2000;

export function LocationsPage() {
  const list = usePagedSearch<Location>("loc", ApiMethod.LocationList, PAGE_SIZE, REFRESH_MS);
  const now = useNowSec();
  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title">Locations</h1>
      <p class="lead">Where each address of record is registered, across the cluster.</p>
      <ListCard list={list} label="Location" empty="No registered bindings."
        searchField={{ id: "location-search", label: "Search by AoR or contact", placeholder: "alice@example.com or 10.0.0.7" }}>
        <table class="stack">
          <caption class="visually-hidden">Location bindings</caption>
          <thead>
            <tr><th scope="col">AoR</th><th scope="col">Contact</th><th scope="col">Expires</th><th scope="col">Owner</th><th scope="col">User agent</th></tr>
          </thead>
          <tbody>
            {list.data?.items.map((b) => (
              <tr key={`${b.aor}\n${b.contact}`}>
                <th scope="row" class="mono break"><a href={routeHref({ page: "binding", aor: b.aor, contact: b.contact })}>{b.aor}</a></th>
                <td class="mono clip" data-label="Contact">{b.contact}</td>
                <td class="nowrap" data-label="Expires">{expiryText(b.expires, now)}</td>
                <td data-label="Owner">{b.owner}</td>
                <td class="clip" data-label="User agent">{b.userAgent}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </ListCard>
    </section>
  );
}
