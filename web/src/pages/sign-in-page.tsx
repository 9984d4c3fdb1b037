/** Sign-in with the agent's API token (api.token in its config). */
import { useState } from "preact/hooks";
import { focusOnMount } from "../components/focus.js";
import { clearTextWarning } from "../lib/transport.js";

export function SignInPage(props: { error: string | null; busy: boolean; onSignIn(token: string): void }) {
  const [token, setToken] = useState("");
  const clear = clearTextWarning(window.location);
  const submit = (e: Event) => {
    e.preventDefault();
    if (token.trim() !== "") props.onSignIn(token.trim());
  };
  return (
    <main id="main" class="sign-in">
      <form class="card" onSubmit={submit} aria-labelledby="sign-in-title">
        <h1 id="sign-in-title">Sign in to locmesh</h1>
        <p class="muted">Use the admin API token from this agent's config (<code>api.token</code> or <code>api.tokenFile</code>).</p>
        {clear && <p class="note" role="note">{clear}</p>}
        <div class="field">
          <label for="token">API token</label>
          <input id="token" type="password" ref={focusOnMount} value={token} autocomplete="current-password" required
            aria-invalid={props.error ? "true" : undefined} aria-describedby={props.error ? "sign-in-error" : undefined}
            onInput={(e) => setToken((e.target as HTMLInputElement).value)} />
        </div>
        {props.error && <p id="sign-in-error" class="error" role="alert">{props.error}</p>}
        <button type="submit" class="primary" disabled={props.busy || token.trim() === ""}>{props.busy ? "Signing in…" : "Sign in"}</button>
      </form>
    </main>
  );
}
