import { pageRange } from "../lib/format.js";

export function Pager(props: { offset: number; shown: number; total: number; hasPrev: boolean; hasNext: boolean; onPrev(): void; onNext(): void; label: string; loading?: boolean }) {
  return (
    <nav class="pager" aria-label={`${props.label} pages`}>
      <span class="muted" aria-live="polite">{props.loading ? "loading…" : pageRange(props.offset, props.shown, props.total)}</span>
      <button type="button" onClick={props.onPrev} disabled={!props.hasPrev}>Previous</button>
      <button type="button" onClick={props.onNext} disabled={!props.hasNext}>Next</button>
    </nav>
  );
}
