/** The shell: sign-in gate, header with the node and connection state, navigation, and the page. */
import { useEffect, useRef, useState } from "preact/hooks";
import { ErrorCode, type RpcError } from "../../agent/contract/errors.js";
import { connectRpc, originRefusal, type ConnectionState, type RpcClient } from "./api/rpc-client.js";
import type { TokenStore } from "./api/token-store.js";
import { RpcContext } from "./api/use-rpc.js";
import { parseRoute, routeHref, type Route } from "./lib/route.js";
import { AliasesPage } from "./pages/aliases-page.js";
import { BindingPage } from "./pages/binding-page.js";
import { ClusterPage } from "./pages/cluster-page.js";
import { LocationsPage } from "./pages/locations-page.js";
import { SignInPage } from "./pages/sign-in-page.js";
import { ReconnectNote } from "./components/reconnect-note.js";
import { clearUnsaved, unsavedQuestion } from "./lib/unsaved.js";

const STATE_TEXT: Record<ConnectionState, string> = {
  connecting: "connecting",
  open: "live",
  reconnecting: "reconnecting…",
  refused: "signed out",
  closed: "closed",
};

function signInError(err: RpcError): string {
  return err.code === ErrorCode.Unauthorized
    ? "That token was refused. Use the api.token from this agent's config."
    : `Cannot sign in: ${err.message}`;
}

export function App(props: { rpcUrl: string; tokens: TokenStore }) {
  const [client, setClient] = useState<RpcClient | null>(null);
  const [conn, setConn] = useState<ConnectionState>("connecting");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [route, setRoute] = useState<Route>(parseRoute(location.hash));
  /** Stops the signed-in client's state reports reaching the page (see signOut). */
  const stopListening = useRef<(() => void) | null>(null);

  const signIn = (token: string) => {
    setBusy(true);
    setError(null);
    connectRpc({ url: props.rpcUrl, token }).then(
      (c) => {
        props.tokens.set(token);
        stopListening.current = c.onState((s) => s !== "resumed" && setConn(s));
        setConn(c.state());
        setClient(c);
        setBusy(false);
      },
      (err: RpcError) => {
        if (err.code === ErrorCode.Unauthorized) props.tokens.clear();
        setError(signInError(err));
        setBusy(false);
      },
    );
  };

  // The old client stops talking to the page first: a state it reported late ("refused" from a
  // redial under way) would otherwise sign out the next session.
  const signOut = (opts: { keepToken?: boolean } = {}) => {
    stopListening.current?.();
    stopListening.current = null;
    client?.close();
    if (!opts.keepToken) props.tokens.clear();
    setClient(null);
    setError(null);
  };

  useEffect(() => {
    const saved = props.tokens.get();
    if (saved) signIn(saved);
    const onHash = () => setRoute(parseRoute(location.hash));
    addEventListener("hashchange", onHash);
    return () => removeEventListener("hashchange", onHash);
  }, []);

  useEffect(() => {
    if (conn === "refused") {
      // The agent restarted refusing this page's origin: the token is fine, and kept; the page
      // says what to change (a reload signs in again once it is changed).
      const why = client?.refusal() ?? null;
      const origin = originRefusal(why);
      signOut({ keepToken: origin });
      setError(origin ? signInError(why!) : "The agent no longer accepts this token. Sign in again.");
    }
  }, [conn]);

  useEffect(() => {
    // Closing or reloading the tab with an edit typed and not saved: the browser asks first.
    const onLeave = (e: BeforeUnloadEvent) => {
      if (unsavedQuestion("Leave") === "") return;
      e.preventDefault();
      e.returnValue = "";
    };
    addEventListener("beforeunload", onLeave);
    return () => removeEventListener("beforeunload", onLeave);
  }, []);

  useEffect(() => {
    // Move focus to the new page, as a full navigation would, so keyboard and screen-reader users land there.
    document.getElementById("main")?.focus({ preventScroll: true });
  }, [route]);

  if (!client) {
    return busy && props.tokens.get() ? <p class="muted center">Signing in…</p> : <SignInPage error={error} busy={busy} onSignIn={signIn} />;
  }
  const nav = (r: Route, label: string) => {
    const current = route.page === r.page || (route.page === "binding" && r.page === "locations");
    return <a href={routeHref(r)} aria-current={current ? "page" : undefined}>{label}</a>;
  };
  return (
    <RpcContext.Provider value={client}>
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <span class="brand">locmesh</span>
        <span class="host muted">{location.host}</span>
        <span class={`badge ${conn === "open" ? "ok" : "warn"}`} role="status" aria-label={`connection ${STATE_TEXT[conn]}`}>{STATE_TEXT[conn]}</span>
        <button type="button" class="link" onClick={() => {
          const question = unsavedQuestion("Sign out");
          if (question && !confirm(question)) return;
          clearUnsaved();
          signOut();
        }}>Sign out</button>
      </header>
      {conn === "reconnecting" && <ReconnectNote client={client} />}
      <nav class="tabs" aria-label="Sections">
        {nav({ page: "aliases" }, "Aliases")}
        {nav({ page: "locations" }, "Locations")}
        {nav({ page: "cluster" }, "Cluster")}
      </nav>
      <main id="main" tabIndex={-1}>
        {route.page === "aliases" && <AliasesPage />}
        {route.page === "locations" && <LocationsPage />}
        {route.page === "binding" && <BindingPage aor={route.aor} contact={route.contact} />}
        {route.page === "cluster" && <ClusterPage />}
      </main>
    </RpcContext.Provider>
  );
}
