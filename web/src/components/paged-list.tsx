/** Search + cursor paging + live refresh for a list page, and the card that holds its table. */
import type { ComponentChildren } from "preact";
import { useCallback, useEffect, useState } from "preact/hooks";
import type { RecordKind } from "../../../agent/contract/records.js";
import { usePage } from "../api/use-rpc.js";
import { cursorOf, firstPage, nextPage, pageOffset, previousPage } from "../lib/pager.js";
import { Pager } from "./pager.js";
import { SearchBox } from "./search-box.js";

export function usePagedSearch<T>(kind: RecordKind, method: string, pageSize: number, refreshMs?: number) {
  const [search, setSearch] = useState("");
  const [pager, setPager] = useState(firstPage(pageSize));
  const onSearch = useCallback((v: string) => {
    setSearch(v);
    setPager(firstPage(pageSize));
  }, [pageSize]);
  const page = usePage<T>(kind, { method, search, after: cursorOf(pager), limit: pageSize }, refreshMs);
  // A page after the first that comes back empty lost its rows (its only alias removed, here or on
  // another node): show the page before it rather than an empty list with Next disabled.
  const emptyLaterPage = page.current && page.data?.items.length === 0 && pager.page > 0;
  useEffect(() => {
    if (emptyLaterPage) setPager(previousPage);
  }, [emptyLaterPage]);
  return { ...page, search, onSearch, pager, setPager };
}

export type PagedSearch<T> = ReturnType<typeof usePagedSearch<T>>;

/** The search field, any error, the table (children), then "1–25 of 300" and the pager. */
export function ListCard<T>(props: {
  list: PagedSearch<T>;
  label: string;
  empty: string;
  searchField: { id: string; label: string; placeholder: string };
  children: ComponentChildren;
}) {
  const { data, current, error, search, onSearch, pager, setPager } = props.list;
  // Only from the page shown for this search and cursor: while the next one loads, `data` is still
  // the page before, whose cursor a second click (or a new search) would apply again.
  const next = current && data ? data.next : null;
  return (
    <div class="card">
      <div class="toolbar">
        <SearchBox {...props.searchField} onSearch={onSearch} />
      </div>
      {error && <p class="error" role="alert">{error}</p>}
      <div class="table-wrap">{props.children}</div>
      {data && current && data.total === 0 && <p class="empty">{search ? `Nothing matches “${search}”.` : props.empty}</p>}
      {/* The first page, a new search or another page on its way: said, rather than "none" or the old rows alone. */}
      {!current && !error && <p class="empty" role="status">Loading…</p>}
      <Pager label={props.label} offset={pageOffset(pager)} shown={data?.items.length ?? 0} total={data?.total ?? 0} loading={!current && !error}
        hasPrev={pager.page > 0} hasNext={next !== null}
        onPrev={() => setPager(previousPage)} onNext={() => next !== null && setPager((p) => nextPage(p, next))} />
    </div>
  );
}
