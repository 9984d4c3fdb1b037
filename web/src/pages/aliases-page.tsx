/**
 * Call-forward aliases: search, page, add, edit, remove; follows changes made anywhere in the
 * cluster. On a hub (its cluster.status reports its PostgreSQL) the list only: a hub makes no
 * changes, and its API refuses them.
 */
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiMethod } from "../../../agent/contract/api-protocol.js";
import { isHubStatus, type ClusterStatus } from "../../../agent/contract/cluster-status.js";
import type { Alias } from "../../../agent/contract/records.js";
import { ListCard, usePagedSearch } from "../components/paged-list.js";
import { AliasForm } from "./alias-form.js";
import { AliasRow } from "./alias-row.js";
import { useRpc } from "../api/use-rpc.js";

const PAGE_SIZE = 25;

/** An edit that was open when its row left the page: removed elsewhere (true), off the page (false), or not known (null). */
interface LostEdit {
  alias: string;
  draft: string;
  removed: boolean | null;
}

function lostEditText(l: LostEdit): string {
  const yours = `your unsaved target was ${l.draft}`;
  if (l.removed === true) return `${l.alias} was removed elsewhere while you were editing it; ${yours}. Add it again above to keep it.`;
  if (l.removed === false) return `${l.alias} left this page while you were editing it (the list changed); ${yours}. Search for it to edit it again.`;
  return `${l.alias} left this page while you were editing it; ${yours}.`;
}

export function AliasesPage() {
  const list = usePagedSearch<Alias>("alias", ApiMethod.AliasList, PAGE_SIZE);
  const client = useRpc();
  const [hub, setHub] = useState(false);
  /** Open edits by alias, with their drafts; one whose row leaves the page is told of, not dropped unsaid. */
  const openEdits = useRef(new Map<string, string>());
  const [lost, setLost] = useState<LostEdit[]>([]);
  const onEditing = (alias: string, draft: string | null) => void (draft === null ? openEdits.current.delete(alias) : openEdits.current.set(alias, draft));
  useEffect(() => {
    const items = list.data?.items;
    if (!items) return;
    const shown = new Set(items.map((a) => a.alias));
    for (const [alias, draft] of openEdits.current) {
      if (shown.has(alias)) continue;
      openEdits.current.delete(alias);
      const note = (removed: boolean | null) => setLost((l) => [...l.filter((x) => x.alias !== alias), { alias, draft, removed }]);
      client.call<{ target: string | null }>(ApiMethod.AliasLookup, { alias }).then((r) => note(r.target === null), () => note(null));
    }
  }, [list.data]);
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
      {lost.map((l) => (
        <p class="card note" role="status" key={l.alias}>
          {lostEditText(l)}{" "}
          <button type="button" class="link" onClick={() => setLost((all) => all.filter((x) => x !== l))}>Dismiss</button>
        </p>
      ))}
      <ListCard list={list} label="Alias" empty="No aliases yet."
        searchField={{ id: "alias-search", label: "Search aliases", placeholder: "name, domain or target" }}>
        <table class="stack">
          <caption class="visually-hidden">Aliases</caption>
          <thead><tr><th scope="col">Alias</th><th scope="col">Forwards to</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
          <tbody>
            {/* Keyed by alias alone: a target changed elsewhere updates the row, keeping an open edit. */}
            {list.data?.items.map((a) => <AliasRow key={a.alias} alias={a} onChanged={list.reload} readOnly={hub} onEditing={onEditing} />)}
          </tbody>
        </table>
      </ListCard>
    </section>
  );
}
