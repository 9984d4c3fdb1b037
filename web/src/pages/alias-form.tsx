/**
 * Add an alias. Fields are checked with the contract's rules before anything is sent. It only adds
 * (`ifAbsent`): an alias that exists already is refused with what it forwards to, so that "Add"
 * never silently replaces another admin's alias; changing one is the row's Edit.
 */
import { useState } from "preact/hooks";
import type { RpcError } from "../../../agent/contract/errors.js";
import { ApiMethod } from "../../../agent/contract/api-protocol.js";
import { useRpc } from "../api/use-rpc.js";
import { outcomeUnknown } from "../api/rpc-client.js";
import { checkAliasForm, hasErrors, type AliasFormErrors } from "../lib/alias-form.js";

export function AliasForm(props: { onSaved(alias: string): void }) {
  const client = useRpc();
  const [alias, setAlias] = useState("");
  const [target, setTarget] = useState("");
  const [errors, setErrors] = useState<AliasFormErrors>({});
  const [failure, setFailure] = useState<string | null>(null);
  /** What the agent noted about the alias just added (alias.set's `notes`: Kamailio will not follow it as one may expect). */
  const [notes, setNotes] = useState<string[]>([]);
  const [busy, setBusy] = useState(false);

  async function submit(e: Event) {
    e.preventDefault();
    const checked = checkAliasForm({ alias, target });
    setErrors(checked.errors);
    setFailure(null);
    setNotes([]);
    if (hasErrors(checked.errors)) {
      document.getElementById(checked.errors.alias ? "new-alias" : "new-target")?.focus();
      return;
    }
    setBusy(true);
    try {
      const saved = await client.call<{ notes?: string[] } | null>(ApiMethod.AliasSet, { alias: checked.alias, target: checked.target, ifAbsent: true });
      setNotes(saved?.notes ?? []);
      setAlias("");
      setTarget("");
      props.onSaved(checked.alias);
      document.getElementById("new-alias")?.focus();
    } catch (err) {
      // "Not saved" only when the agent said so: a call that got no answer may have been saved.
      setFailure(outcomeUnknown(err) ? `Perhaps saved: ${(err as RpcError).message}` : `Not saved: ${(err as RpcError).message}`);
    } finally {
      setBusy(false);
    }
  }

  return (
    <form class="card form-row" onSubmit={submit} noValidate aria-labelledby="add-alias-title">
      <h2 id="add-alias-title">Add an alias</h2>
      <Field id="new-alias" label="Alias (who is called)" value={alias} onInput={setAlias} error={errors.alias} placeholder="sip:bob@example.com" />
      <Field id="new-target" label="Forwards to" value={target} onInput={setTarget} error={errors.target} placeholder="sip:alice@example.com" />
      <div class="actions">
        <button type="submit" class="primary" disabled={busy}>{busy ? "Saving…" : "Add alias"}</button>
      </div>
      {failure && <p class="error" role="alert">{failure}</p>}
      {notes.map((n) => <p class="note" role="status" key={n}>Added, but note: {n}</p>)}
    </form>
  );
}

export function Field(props: { id: string; label: string; value: string; onInput(v: string): void; error?: string | undefined; placeholder?: string }) {
  const errId = `${props.id}-error`;
  return (
    <div class="field">
      <label for={props.id}>{props.label}</label>
      <input id={props.id} value={props.value} placeholder={props.placeholder} autocomplete="off" spellcheck={false}
        aria-invalid={props.error ? "true" : undefined} aria-describedby={props.error ? errId : undefined}
        onInput={(e) => props.onInput((e.target as HTMLInputElement).value)} />
      {props.error && <p id={errId} class="field-error">{props.error}</p>}
    </div>
  );
}
