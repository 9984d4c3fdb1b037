/**
 * Cursor paging as the API does it (`after` = the previous page's `next`): a stack of the cursors
 * of the pages seen so far, so Previous works without offsets. Pure state transitions.
 */
export interface PagerState {
  /** cursors[i] is the `after` that fetches page i; cursors[0] is "". */
  cursors: string[];
  page: number;
  pageSize: number;
}

export const firstPage = (pageSize: number): PagerState => ({ cursors: [""], page: 0, pageSize });

export function cursorOf(s: PagerState): string {
  return s.cursors[s.page] ?? "";
}

export function nextPage(s: PagerState, next: string | null): PagerState {
  if (next === null) return s;
  const cursors = s.cursors.slice(0, s.page + 1);
  cursors.push(next);
  return { ...s, cursors, page: s.page + 1 };
}

export function previousPage(s: PagerState): PagerState {
  return s.page === 0 ? s : { ...s, page: s.page - 1 };
}

/** Index of the first row on the current page, for "51–100 of 1,234". */
export const pageOffset = (s: PagerState) => s.page * s.pageSize;
