/**
 * Wrong and replayed credentials, each tried several times: a hello MACed with the wrong key, a
 * node id nobody listed, the target's own id, a replica id that does not match the node, a
 * recorded hello replayed on a new connection, and on the API a wrong, missing or malformed token
 * over HTTP and a wrong auth.login over WebSocket (one per connection, which the agent then
 * closes). Every acceptance is counted (must be 0).
 */
import type { Challenge, WireMessage } from "../../support/rpc-wire.js";
import { RpcWire, makeHello } from "../../support/rpc-wire.js";

export interface CredentialTarget {
  meshUrl: string;
  secret: string;
  /** A node id the target lists (the drill's stand-in peer). */
  listedId: string;
  /** The target's own node id. */
  targetId: string;
  apiUrl: string;
  token: string;
  /** Resolves once the target no longer has a session with `listedId`. */
  listedGone(): Promise<void>;
}

export interface CredentialFigures {
  attempts: Record<string, number>;
  /** Attempts answered with a result or an open session: must be 0. */
  accepted: number;
  /** Refused peer connections the agent closed afterwards. */
  closed: number;
  examples: string[];
}

type Hello = ReturnType<typeof makeHello>;

async function tryHello(t: CredentialTarget, make: (ch: Challenge) => Hello, fig: CredentialFigures, kind: string): Promise<void> {
  fig.attempts[kind] = (fig.attempts[kind] ?? 0) + 1;
  const wire = await RpcWire.open(`${t.meshUrl}/peer`);
  try {
    const answer = await wire.request("auth.hello", make(await wire.challenge()));
    if (answer.error === undefined) {
      fig.accepted++;
      fig.examples.push(`${kind}: hello accepted: ${JSON.stringify(answer).slice(0, 160)}`);
      return;
    }
    const code = await Promise.race([wire.closed, new Promise<null>((r) => setTimeout(() => r(null), 5000))]);
    if (code !== null) fig.closed++;
  } finally {
    await wire.close();
  }
}

async function post(t: CredentialTarget, headers: Record<string, string>): Promise<{ status: number; body: WireMessage | null }> {
  const res = await fetch(`${t.apiUrl}/rpc`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "alias.set", params: { alias: "sip:dfzcred@example.com", target: "sip:x@example.com" } }),
  });
  const text = await res.text();
  try {
    return { status: res.status, body: JSON.parse(text) as WireMessage };
  } catch {
    return { status: res.status, body: null };
  }
}

export async function attackCredentials(t: CredentialTarget, rounds: number): Promise<CredentialFigures> {
  const fig: CredentialFigures = { attempts: {}, accepted: 0, closed: 0, examples: [] };
  const wrongSecret = `${t.secret}-but-wrong`;

  // One legitimate handshake, recorded, to replay below.
  await t.listedGone();
  const legit = await RpcWire.open(`${t.meshUrl}/peer`);
  const recorded = makeHello(t.secret, t.listedId, await legit.challenge());
  const ok = await legit.request("auth.hello", recorded);
  await legit.close();
  if (ok.error) throw new Error(`the legitimate hello was refused: ${ok.error.message}`);
  await t.listedGone();

  for (let i = 0; i < rounds; i++) {
    await tryHello(t, (ch) => makeHello(wrongSecret, t.listedId, ch), fig, "wrong key");
    await tryHello(t, (ch) => makeHello(t.secret, `intruder${i}`, ch), fig, "unknown node id");
    await tryHello(t, (ch) => makeHello(t.secret, t.targetId, ch), fig, "own node id");
    await tryHello(t, (ch) => ({ ...makeHello(t.secret, t.listedId, ch), replicaId: "other~0123abcd" }), fig, "replica id of another node");
    await tryHello(t, () => recorded, fig, "replayed hello");
    await t.listedGone();

    for (const [kind, headers] of [
      ["api wrong token", { authorization: `Bearer ${t.token}x` }],
      ["api no token", {}],
      ["api token without Bearer", { authorization: t.token }],
      ["api empty Bearer", { authorization: "Bearer " }],
    ] as [string, Record<string, string>][]) {
      fig.attempts[kind] = (fig.attempts[kind] ?? 0) + 1;
      const res = await post(t, headers);
      if (res.status !== 401 || res.body?.error === undefined) {
        fig.accepted++;
        fig.examples.push(`${kind}: HTTP ${res.status} ${JSON.stringify(res.body).slice(0, 120)}`);
      }
    }

    // One sign-in attempt per connection (agent/api/http-server.ts): a refused auth.login is
    // answered and the connection closed with 4003, so each wrong one gets its own connection.
    for (const [kind, token] of [["api ws wrong login", `${t.token} `], ["api ws empty login", ""]] as const) {
      fig.attempts[kind] = (fig.attempts[kind] ?? 0) + 1;
      const ws = await RpcWire.open(`${t.apiUrl.replace(/^http/, "ws")}/rpc`, { headers: { authorization: "Bearer wrong-token-wrong-token" } });
      try {
        const answers = [
          await ws.request("alias.set", { alias: "sip:dfzcred@example.com", target: "sip:x@example.com" }),
          await ws.request("auth.login", { token }),
        ];
        for (const a of answers) {
          if (a.error === undefined) {
            fig.accepted++;
            fig.examples.push(`${kind}: ${JSON.stringify(a).slice(0, 120)}`);
          }
        }
        const code = await Promise.race([ws.closed, new Promise<null>((r) => setTimeout(() => r(null), 5000))]);
        if (code === 4003) fig.closed++;
        else {
          fig.accepted++;
          fig.examples.push(`${kind}: the connection was not closed with 4003 after the refused sign-in (${code ?? "still open after 5 s"})`);
        }
      } finally {
        await ws.close();
      }
    }
  }
  return fig;
}
