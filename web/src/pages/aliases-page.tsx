/**
 * Call-forward aliases: search, page, add, edit, remove; follows changes made anywhere in the
 * cluster. On a hub (its cluster.status reports its PostgreSQL) the list only: a hub makes no
 * changes, and its API refuses them.
 */
import { useEffect, useState } from "preact/hooks";
import { ApiMethod } from "../../../agent/contract/api-protocol.js";
import { isHubStatus, type ClusterStatus } from "../../../agent/contract/cluster-status.js";
import type { Alias } from "../../../agent/contract/records.js";
import { ListCard, usePagedSearch } from "../components/paged-list.js";
import { AliasForm } from "./alias-form.js";
import { AliasRow } from "./alias-row.js";
import { useRpc } from "../api/use-rpc.js";

const PAGE_SIZE = 25;

export function AliasesPage() {
  const list = usePagedSearch<Alias>("alias", ApiMethod.AliasList, PAGE_SIZE);
  const client = useRpc();
  const [hub, setHub] = useState(false);
  useEffect(() => {
    // Until it answers the page offers the form: an agent's page must not wait for this. Asked
    // again when the connection comes back, since a first ask while reconnecting fails.
    let asked = false;
    const ask = () => {
      if (asked) return;
      client.call<Pick<ClusterStatus, "postgres">>(ApiMethod.ClusterStatus, {}).then((s) => {
        asked = true;
        setHub(isHubStatus(s));
      }, () => undefined);
    };
    ask();
    return client.onState((s) => (s === "open" || s === "resumed") && ask());
  }, [client]);
  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title">Call forwarding</h1>
      <p class="lead">An alias forwards calls for one SIP address to another. Changes apply on every node.</p>
      {hub
        ? <p class="card" role="note">This is a hub: it relays the agents' changes and makes none. Add, edit and remove aliases on an agent's web UI (or with <code>locmesh alias</code> against an agent).</p>
        : <AliasForm onSaved={list.reload} />}
      <ListCard list={list} label="Alias" empty="No aliases yet."
        searchField={{ id: "alias-search", label: "Search aliases", placeholder: "name, domain or target" }}>
        <table class="stack">
          <caption class="visually-hidden">Aliases</caption>
          <thead><tr><th scope="col">Alias</th><th scope="col">Forwards to</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
          <tbody>
            {/* Keyed by alias alone: a target changed elsewhere updates the row, keeping an open edit. */}
            {list.data?.items.map((a) => <AliasRow key={a.alias} alias={a} onChanged={list.reload} readOnly={hub} />)}
          </tbody>
        </table>
      </ListCard>
    </section>
  );
}
