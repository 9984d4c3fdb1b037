/**
 * One alias in the table: view, edit its target in place, or remove it (asks once more). Rows are
 * keyed by alias, so a change made elsewhere while an edit is open updates the row without closing
 * the edit; Save then sends the target the edit started from (`expectTarget`), and the agent
 * refuses it if the alias changed meanwhile, rather than silently undoing that change; a second
 * Save, the change now shown, replaces it. "Yes,
 * remove" sends the target the row shows (a change seen while confirming is pointed out), so a
 * change the browser has not heard of yet is not thrown away unseen.
 */
import { useEffect, useRef, useState } from "preact/hooks";
import { ErrorCode, type RpcError } from "../../../agent/contract/errors.js";
import { ApiMethod } from "../../../agent/contract/api-protocol.js";
import type { Alias } from "../../../agent/contract/records.js";
import { useRpc } from "../api/use-rpc.js";
import { focusOnMount } from "../components/focus.js";
import { changedMeanwhile, checkAliasForm } from "../lib/alias-form.js";
import { markUnsaved } from "../lib/unsaved.js";

type Mode = "view" | "edit" | "confirm-remove";

/**
 * `readOnly`: a hub's page, which lists the aliases but cannot change them (its API refuses writes).
 * `onEditing`: told the draft while an edit is open, null once it is closed; not when the row goes
 * (the alias removed elsewhere, or off the page), so that the page can tell what was lost.
 */
export function AliasRow(props: { alias: Alias; onChanged(): void; readOnly?: boolean; onEditing?(alias: string, draft: string | null): void }) {
  const client = useRpc();
  const { alias, target } = props.alias;
  const [mode, setMode] = useState<Mode>("view");
  const [draft, setDraft] = useState(target);
  /** The target when Edit was pressed: what Save expects the alias still forwards to. */
  const [base, setBase] = useState(target);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const inputId = `edit-${alias}`;
  // Back in view mode after Cancel or Keep, the focus returns to the button that left it.
  const editButton = useRef<HTMLButtonElement>(null);
  const removeButton = useRef<HTMLButtonElement>(null);
  const previous = useRef<Mode>("view");
  useEffect(() => props.onEditing?.(alias, mode === "edit" ? draft : null), [mode, draft]);
  useEffect(() => markUnsaved(alias, mode === "edit" && draft.trim() !== base), [mode, draft, base]);
  useEffect(() => () => markUnsaved(alias, false), []);
  useEffect(() => {
    if (mode === "view" && previous.current !== "view") (previous.current === "edit" ? editButton : removeButton).current?.focus();
    previous.current = mode;
  }, [mode]);

  /**
   * What the agent noted about the target last saved here (alias.set's notes, as the Add form shows
   * them), shown while the alias still forwards there: a target changed since has notes of its own.
   */
  const [noted, setNoted] = useState<{ target: string; notes: string[] } | null>(null);
  const run = async (call: () => Promise<unknown>) => {
    setError(null);
    setNoted(null);
    setBusy(true);
    try {
      const answer = (await call()) as { target?: string; notes?: string[] } | null;
      if (answer?.target !== undefined && answer.notes?.length) setNoted({ target: answer.target, notes: answer.notes });
      setMode("view");
      props.onChanged();
    } catch (err) {
      const e = err as RpcError;
      const now = (e.data as { target?: unknown } | undefined)?.target;
      if (mode === "edit" && e.code === ErrorCode.Conflict && typeof now === "string") {
        // Changed elsewhere since Edit: the next Save replaces what it forwards to now, knowingly
        // (without this, every Save met the same conflict, and only Cancel, losing the draft, got out).
        setBase(now);
        setError(`Not saved: ${alias} was changed meanwhile and now forwards to ${now}. Save again to replace that with yours, or Cancel.`);
      } else setError(e.message);
    } finally {
      setBusy(false);
    }
  };

  const save = (e: Event) => {
    e.preventDefault();
    if (busy) return;
    const checked = checkAliasForm({ alias, target: draft });
    if (checked.errors.target) return setError(checked.errors.target);
    void run(() => client.call(ApiMethod.AliasSet, { alias, target: checked.target, expectTarget: base }));
  };
  const cancel = () => (setMode("view"), setError(null));

  return (
    <tr data-alias={alias}>
      <th scope="row" class="mono break">{alias}</th>
      <td class="mono break" data-label="Forwards to">
        {mode === "edit" ? (
          <form class="inline-edit" onSubmit={save} noValidate aria-busy={busy}>
            <label class="visually-hidden" for={inputId}>New target for {alias}</label>
            <input id={inputId} ref={focusOnMount} value={draft} spellcheck={false} aria-invalid={error ? "true" : undefined}
              onInput={(e) => setDraft((e.target as HTMLInputElement).value)}
              onKeyDown={(e) => e.key === "Escape" && !busy && cancel()} />
            <button type="submit" class="primary" disabled={busy}>{busy ? "Saving…" : "Save"}</button>
            <button type="button" onClick={cancel} disabled={busy}>Cancel</button>
          </form>
        ) : (
          target
        )}
        {mode !== "view" && changedMeanwhile(base, target) && <p class="muted small" role="status">Changed meanwhile: it now forwards to {target}.</p>}
        {error && <p class="field-error" role="alert">{error}</p>}
        {mode === "view" && noted?.target === target && noted.notes.map((n) => <p class="note" role="status" key={n}>Saved, but note: {n}</p>)}
      </td>
      <td class="row-actions">
        {mode === "view" && !props.readOnly && (
          <>
            <button type="button" ref={editButton} onClick={() => (setDraft(target), setBase(target), setError(null), setMode("edit"))} aria-label={`Edit ${alias}`}>Edit</button>
            <button type="button" ref={removeButton} class="danger" onClick={() => (setBase(target), setError(null), setMode("confirm-remove"))} aria-label={`Remove ${alias}`}>Remove</button>
          </>
        )}
        {mode === "confirm-remove" && (
          <>
            {/* aria-disabled rather than disabled: a disabled button drops the keyboard focus. */}
            <button type="button" class="danger" ref={focusOnMount} aria-disabled={busy}
              onClick={() => !busy && void run(() => client.call(ApiMethod.AliasRemove, { alias, expectTarget: target }))}>
              {busy ? "Removing…" : "Yes, remove"}
            </button>
            <button type="button" onClick={() => setMode("view")} disabled={busy}>Keep</button>
          </>
        )}
      </td>
    </tr>
  );
}
