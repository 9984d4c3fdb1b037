/**
 * A node's keys of one kind while they are rotated (agent/ops/key-ring.ts), and the API's token
 * check over them (agent/api/api-auth.ts): old and new token both work during the overlap, a
 * dropped one is refused, and who last used an accepted one is known.
 */
import { describe, expect, it } from "vitest";
import { ErrorCode } from "../../agent/contract/errors.js";
import { createApiAuth } from "../../agent/api/api-auth.js";
import { describeKeys } from "../../agent/cli/client-output.js";
import { acceptedKeysLastUsedBy, keysText } from "../../agent/contract/keys-text.js";
import { formatDuration as formatWebDuration } from "../../web/src/lib/format.js";
import { createAuthThrottle } from "../../agent/ops/auth-throttle.js";
import { applyCredentials, createCredentials, createKeyRing, describeKeyChange, keyId, keySet } from "../../agent/ops/key-ring.js";
import { createMetrics } from "../../agent/ops/metrics.js";
import { capturedLog as capture } from "../support/captured-log.js";

const OLD = "old-secret-0123456789abcdef";
const NEW = "new-secret-0123456789abcdef";

describe("key ids", () => {
  it("name a key alike everywhere, differ between keys, and hold no part of the key", () => {
    expect(keyId(OLD)).toMatch(/^[0-9a-f]{8}$/);
    expect(keyId(OLD)).toBe(keyId(`${OLD}`));
    expect(keyId(OLD)).not.toBe(keyId(NEW));
    expect(OLD).not.toContain(keyId(OLD));
  });
});

describe("key ring", () => {
  it("holds the own key first, each accepted one once, and not the own one again", () => {
    const ring = createKeyRing({ own: NEW, accepted: [OLD, NEW, OLD] });
    expect(ring.current()).toEqual({ own: NEW, accepted: [OLD] });
    expect(ring.all()).toEqual([NEW, OLD]);
    expect([ring.roleOf(NEW), ring.roleOf(OLD), ring.roleOf("nope-0123456789abcdef")]).toEqual(["own", "accepted", null]);
  });

  it("knows who last used each accepted key, and forgets it once SIGHUP drops the key", () => {
    let now = Date.parse("2026-11-22T10:00:00.000Z");
    const ring = createKeyRing({ own: NEW, accepted: [OLD] }, { nowMs: () => now });
    expect(ring.status()).toEqual({ own: keyId(NEW), accepted: [{ id: keyId(OLD), lastUsedAt: null, lastUsedAgeSeconds: null, lastUsedBy: null }] });
    ring.noteUse(OLD, "n2");
    now += 90_000;
    expect(ring.status().accepted).toEqual([{ id: keyId(OLD), lastUsedAt: "2026-11-22T10:00:00.000Z", lastUsedAgeSeconds: 90, lastUsedBy: "n2" }]);
    ring.set({ own: NEW, accepted: [] });
    expect(ring.roleOf(OLD)).toBeNull();
    ring.set({ own: NEW, accepted: [OLD] });
    expect(ring.status().accepted[0]!.lastUsedBy).toBeNull();
  });

  it("keeps what it knew of a key that moves from accepted to own and back (the switch)", () => {
    const ring = createKeyRing({ own: OLD, accepted: [NEW] });
    ring.noteUse(NEW, "n3");
    ring.set({ own: NEW, accepted: [OLD] });
    ring.noteUse(OLD, "n1");
    expect(ring.status().accepted).toMatchObject([{ id: keyId(OLD), lastUsedBy: "n1" }]);
  });

  it("says what SIGHUP changed, by id, and nothing when nothing did", () => {
    expect(describeKeyChange(keySet(OLD, []), keySet(OLD, []))).toBeNull();
    expect(describeKeyChange(keySet(OLD, []), keySet(OLD, [NEW]))).toBe(`own ${keyId(OLD)}; also accepts ${keyId(NEW)}`);
    expect(describeKeyChange(keySet(OLD, [NEW]), keySet(NEW, [OLD]))).toBe(`own ${keyId(NEW)} (was ${keyId(OLD)}); also accepts ${keyId(OLD)}`);
    expect(describeKeyChange(keySet(NEW, [OLD]), keySet(NEW, []))).toBe(`own ${keyId(NEW)}; accepts no other; no longer accepts ${keyId(OLD)}`);
  });

  it("applyCredentials takes both kinds from a config read again and logs each change, never a key", () => {
    const c = createCredentials({ mesh: { secret: OLD, acceptedSecrets: [] }, api: { token: OLD, acceptedTokens: [] } });
    const { log, lines } = capture();
    applyCredentials(c, { mesh: { secret: OLD, acceptedSecrets: [NEW] }, api: { token: OLD, acceptedTokens: [] } }, log);
    expect(c.clusterKeys.all()).toEqual([OLD, NEW]);
    expect(lines.map((l) => l.msg)).toEqual([`SIGHUP: cluster keys applied: own ${keyId(OLD)}; also accepts ${keyId(NEW)} (sessions already up stay up; new handshakes use these)`]);
    applyCredentials(c, { mesh: { secret: OLD, acceptedSecrets: [NEW] }, api: { token: NEW, acceptedTokens: [OLD] } }, log);
    expect(lines[1]!.msg).toMatch(/^SIGHUP: API tokens applied: own \w{8} \(was \w{8}\); also accepts/);
    expect(JSON.stringify(lines)).not.toContain(OLD);
    expect(JSON.stringify(lines)).not.toContain(NEW);
  });

  it("status shows the own key and each accepted one with its last use, and says what counts as a use", () => {
    expect(describeKeys({ own: "77aa01fe", accepted: [] }, "clusterKeys")).toBe("77aa01fe (mesh.secret); accepts no other");
    const handshake = "A use: a peer's handshake with it when dialing this node, while it was mesh.secret or accepted here (a session counts once, at its handshake)";
    expect(describeKeys({
      own: "77aa01fe",
      accepted: [
        { id: "3f2a9c1b", lastUsedAt: "2026-11-22T10:00:00.000Z", lastUsedAgeSeconds: 75, lastUsedBy: "n2" },
        { id: "0c1d2e3f", lastUsedAt: null, lastUsedAgeSeconds: null, lastUsedBy: null },
      ],
    }, "clusterKeys")).toBe(
      "77aa01fe (mesh.secret); also accepts 3f2a9c1b (last used by n2 1m15s ago, at 2026-11-22T10:00:00.000Z), 0c1d2e3f (not used since this node began holding it). " +
        handshake,
    );
    // The web UI writes the same with its own durations, and marks the peer row of each key's last user.
    const keys = { own: "77aa01fe", accepted: [{ id: "3f2a9c1b", lastUsedAt: "2026-11-22T10:00:00.000Z", lastUsedAgeSeconds: 75, lastUsedBy: "n2" }] };
    expect(keysText(keys, "clusterKeys", formatWebDuration)).toBe(`77aa01fe (mesh.secret); also accepts 3f2a9c1b (last used by n2 1m 15s ago, at 2026-11-22T10:00:00.000Z). ${handshake}`);
    expect([acceptedKeysLastUsedBy(keys, "n2").map((a) => a.id), acceptedKeysLastUsedBy(keys, "n3"), acceptedKeysLastUsedBy(undefined, "n2")]).toEqual([["3f2a9c1b"], [], []]);
    // API tokens: the same "last used", what one use of a token is.
    expect(describeKeys({ own: "99e2eb2a", accepted: [{ id: "d138936f", lastUsedAt: null, lastUsedAgeSeconds: null, lastUsedBy: null }] }, "apiTokens")).toBe(
      "99e2eb2a (api.token); also accepts d138936f (not used since this node began holding it). " +
        "A use: an API request or sign-in with it, while it was api.token or accepted here (a signed-in web UI tab counts once, at its sign-in)",
    );
  });
});

describe("last used: the same tally for cluster keys and API tokens", () => {
  it("an old key used while it was this node's own shows that use once it is only accepted (the switch), for cluster keys and tokens alike", () => {
    let now = Date.parse("2026-11-22T10:00:00.000Z");
    const c = createCredentials({ mesh: { secret: OLD, acceptedSecrets: [] }, api: { token: OLD, acceptedTokens: [] } }, { nowMs: () => now });
    // A peer's handshake with the cluster key, and an API request with the token, while each was this node's own.
    c.clusterKeys.noteUse(OLD, "n2");
    const api = createApiAuth({ tokens: c.apiTokens, metrics: createMetrics({ defaults: false }), log: capture().log, nowMs: () => now });
    expect(api.verify(OLD, "10.0.0.7", "bearer")).toBeNull();
    now += 60_000;
    // Rotation steps 1 and 2, each a SIGHUP.
    const { log } = capture();
    applyCredentials(c, { mesh: { secret: OLD, acceptedSecrets: [NEW] }, api: { token: OLD, acceptedTokens: [NEW] } }, log);
    applyCredentials(c, { mesh: { secret: NEW, acceptedSecrets: [OLD] }, api: { token: NEW, acceptedTokens: [OLD] } }, log);
    const used = { id: keyId(OLD), lastUsedAt: "2026-11-22T10:00:00.000Z", lastUsedAgeSeconds: 60 };
    expect(c.clusterKeys.status().accepted).toEqual([{ ...used, lastUsedBy: "n2" }]);
    expect(c.apiTokens.status().accepted).toEqual([{ ...used, lastUsedBy: "10.0.0.7" }]);
    expect(describeKeys(c.clusterKeys.status(), "clusterKeys")).toContain(`also accepts ${keyId(OLD)} (last used by n2 1m00s ago, at 2026-11-22T10:00:00.000Z). A use: `);
    expect(describeKeys(c.apiTokens.status(), "apiTokens")).toContain(`also accepts ${keyId(OLD)} (last used by 10.0.0.7 1m00s ago, at 2026-11-22T10:00:00.000Z). A use: `);
  });

  it("forgets a key's uses when a SIGHUP drops it, alike for both kinds: the text then says since when it counts", () => {
    const c = createCredentials({ mesh: { secret: OLD, acceptedSecrets: [] }, api: { token: OLD, acceptedTokens: [] } });
    c.clusterKeys.noteUse(OLD, "n2");
    c.apiTokens.noteUse(OLD, "10.0.0.7");
    // A step 2 done in two reloads: the new key first, the old one accepted only in the next.
    const { log } = capture();
    applyCredentials(c, { mesh: { secret: NEW, acceptedSecrets: [] }, api: { token: NEW, acceptedTokens: [] } }, log);
    applyCredentials(c, { mesh: { secret: NEW, acceptedSecrets: [OLD] }, api: { token: NEW, acceptedTokens: [OLD] } }, log);
    expect(describeKeys(c.clusterKeys.status(), "clusterKeys")).toContain(`also accepts ${keyId(OLD)} (not used since this node began holding it)`);
    expect(describeKeys(c.apiTokens.status(), "apiTokens")).toContain(`also accepts ${keyId(OLD)} (not used since this node began holding it)`);
  });
});

describe("API token check during a rotation", () => {
  const REMOTE = "10.0.0.9";
  function auth(own: string, accepted: string[] = []) {
    const tokens = createKeyRing({ own, accepted });
    const metrics = createMetrics({ defaults: false });
    const { log, lines } = capture();
    let now = 0;
    const a = createApiAuth({ tokens, metrics, log, throttle: createAuthThrottle({ nowMs: () => now }), nowMs: () => now });
    const counted = async () => (await metrics.registry.getSingleMetricAsString("locmesh_api_authentications_total")).split("\n").filter((l) => !l.startsWith("#"));
    return { a, tokens, lines, counted, tick: (ms: number) => (now += ms) };
  }

  it("takes api.token and every accepted token, and counts which", async () => {
    const { a, counted } = auth(NEW, [OLD]);
    expect(a.verify(NEW, REMOTE, "bearer")).toBeNull();
    expect(a.verify(OLD, REMOTE, "bearer")).toBeNull();
    expect(a.verify(OLD, REMOTE, "login")).toBeNull();
    expect(a.accepts(OLD, REMOTE)).toBe(true);
    expect(a.verify("another-token-0123456789", REMOTE, "bearer")?.code).toBe(ErrorCode.Unauthorized);
    expect(await counted()).toEqual(['locmesh_api_authentications_total{token="own"} 1', 'locmesh_api_authentications_total{token="accepted"} 3']);
  });

  it("refuses a token once SIGHUP dropped it, and takes one it added", () => {
    const { a, tokens } = auth(OLD);
    expect(a.verify(NEW, REMOTE, "bearer")?.code).toBe(ErrorCode.Unauthorized);
    tokens.set({ own: OLD, accepted: [NEW] });
    expect(a.verify(NEW, REMOTE, "bearer")).toBeNull();
    tokens.set({ own: NEW, accepted: [] });
    expect(a.verify(OLD, REMOTE, "bearer")?.code).toBe(ErrorCode.Unauthorized);
    expect(a.verify(NEW, REMOTE, "bearer")).toBeNull();
  });

  it("logs the use of an accepted token at most once a minute per token, naming the client and the token's id", () => {
    const { a, lines, tokens, tick } = auth(NEW, [OLD]);
    for (let i = 0; i < 5; i++) a.verify(OLD, REMOTE, "bearer");
    a.verify(NEW, REMOTE, "bearer");
    expect(lines.map((l) => l.msg)).toEqual([
      `an API client at ${REMOTE} used accepted token ${keyId(OLD)}, not api.token: a token rotation is under way; drop the token from api.acceptedTokens once nothing uses it (locmesh status: api tokens; logged at most once a minute per token)`,
    ]);
    tick(60_000);
    a.verify(OLD, REMOTE, "bearer");
    expect(lines).toHaveLength(2);
    expect(tokens.status().accepted[0]).toMatchObject({ id: keyId(OLD), lastUsedBy: REMOTE });
  });
});
