/**
 * How the agent learns that its Kamailio keys AoRs without their domain (usrloc use_domain 0) and
 * refuses to attach (agent/kamailio/usrloc-keys.ts): asked once per Kamailio instance, asked again
 * after evapi reconnects, registrar events held back until the answer is in and refused after a
 * "no". The real Kamailio's answers are in test/integration/kamailio-use-domain.test.ts.
 */
import { describe, expect, it } from "vitest";
import { createHlc } from "../../agent/core/hlc.js";
import { createReplica } from "../../agent/core/replica.js";
import { openSqliteStore } from "../../agent/journal/sqlite-store.js";
import type { KamailioInstance } from "../../agent/kamailio/core-rpc.js";
import { createKamailioTimes } from "../../agent/kamailio/kamailio-times.js";
import type { RegisterEvent } from "../../agent/kamailio/register-event.js";
import { createRegistrarIntake } from "../../agent/kamailio/registrar-intake.js";
import { createUsrlocKeys } from "../../agent/kamailio/usrloc-keys.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { createMetrics } from "../../agent/ops/metrics.js";

const A: KamailioInstance = { mainPid: 100, upSince: "Mon Nov 23 01:00:00 2026", uptimeSec: 5 };
const B: KamailioInstance = { mainPid: 200, upSince: "Mon Nov 23 02:00:00 2026", uptimeSec: 1 };

/** A Kamailio whose keysWithDomain answers are scripted; counts the questions. */
function kamailio(answers: (boolean | null | Error)[]) {
  const logged: string[] = [];
  let asked = 0;
  const keys = createUsrlocKeys({
    usrloc: {
      keysWithDomain: async () => {
        const a = answers[Math.min(asked++, answers.length - 1)]!;
        if (a instanceof Error) throw a;
        return a;
      },
    },
    table: "location",
    log: { error: (msg: string) => void logged.push(`error ${msg}`), info: (msg: string) => void logged.push(`info ${msg}`), warn: (_o: unknown, msg?: string) => void logged.push(`warn ${msg}`) } as never,
  });
  return { keys, logged, asked: () => asked };
}

describe("usrloc keys", () => {
  it("asks each instance once, refuses while it keys without domains, and attaches once a new instance keys user@domain", async () => {
    const k = kamailio([false, true]);
    await k.keys.check(A);
    await k.keys.check(A);
    expect(k.asked()).toBe(1);
    expect(k.keys.refusal()?.reason).toMatch(/^Kamailio's usrloc keys AoRs without their domain: .*set modparam\("usrloc", "use_domain", 1\) in kamailio\.cfg and restart Kamailio$/);
    expect(await k.keys.admit()).toBe(false);
    expect(k.logged.filter((l) => l.startsWith("error"))).toHaveLength(1);
    await k.keys.check(B);
    expect(k.asked()).toBe(2);
    expect(k.keys.refusal()).toBeNull();
    expect(await k.keys.admit()).toBe(true);
    expect(k.logged.at(-1)).toMatch(/^info .*attaching to it$/);
  });

  it("refuses events while a Kamailio that keyed without domains does not answer yet after a reconnect", async () => {
    const k = kamailio([false, new Error("no answer"), true]);
    await k.keys.check(A);
    k.keys.forget();
    expect(await k.keys.admit()).toBe(false);
    await k.keys.check(B);
    expect(await k.keys.admit()).toBe(true);
  });

  it("asks again after forget() (evapi reconnected), the next event waiting for the answer", async () => {
    const k = kamailio([true, false]);
    await k.keys.check(A);
    k.keys.forget();
    expect(await k.keys.admit()).toBe(false);
    expect(k.asked()).toBe(2);
    await k.keys.check(A);
    expect(k.asked()).toBe(2);
  });

  it("attaches as it always did when Kamailio cannot say or does not answer, asking again at the next check, not at each event", async () => {
    const k = kamailio([new Error("no answer"), null]);
    await k.keys.check(A);
    expect(k.keys.refusal()).toBeNull();
    expect(await k.keys.admit()).toBe(true);
    expect(k.asked()).toBe(1);
    await k.keys.check(A);
    expect(k.asked()).toBe(2);
    await k.keys.check(A);
    expect(await k.keys.admit()).toBe(true);
    expect(k.asked()).toBe(2);
    expect(k.logged).toEqual([expect.stringMatching(/^warn could not tell whether Kamailio's usrloc keys AoRs user@domain/)]);
  });
});

describe("a reconcile's dump that shows AoRs without their domain", () => {
  it("refuses the Kamailio whose lookup answered neither way, until an instance says it keys user@domain", async () => {
    const k = kamailio([null, true]);
    await k.keys.check(A);
    expect(await k.keys.admit()).toBe(true); // could not tell: attached as if it did
    k.keys.refuse("Kamailio's usrloc keys AoRs without their domain (its table holds \"alice\")");
    expect(k.keys.refusal()).toMatchObject({ reason: expect.stringContaining('its table holds "alice"') });
    expect(await k.keys.admit()).toBe(false);
    await k.keys.check(A); // the same instance is not asked again
    expect(k.keys.refusal()).not.toBeNull();
    await k.keys.check(B); // a restarted one that says yes
    expect(k.keys.refusal()).toBeNull();
    expect(await k.keys.admit()).toBe(true);
  });
});

describe("registrar intake with admit()", () => {
  it("journals no event while admit() says no, and counts them refused", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n1" });
    const replica = createReplica({ store, hlc: createHlc({ wallMillis: Date.now }), log: silentLogger() });
    const metrics = createMetrics({ defaults: false });
    metrics.exportAgentSeries();
    metrics.exportKamailioSeries();
    let admit = false;
    const intake = createRegistrarIntake({
      nodeId: "n1", store, replica, times: createKamailioTimes(), log: silentLogger(), metrics, maxQueued: 16, lingerMs: 0, clockLeadMs: () => 0,
      sink: { isPending: () => false, writtenAt: () => undefined, unseenByKamailio: () => false },
      flow: { pause: () => undefined, resume: () => undefined },
      admit: async () => admit,
    });
    const ev = (user: string): RegisterEvent => {
      const contact = `sip:${user}@192.0.2.1:5060`;
      return {
        type: "register", rc: 1, aor: `${user}@example.com`, requestContacts: [{ uri: contact, expires: null }], requestExpires: 3600,
        callid: `call-${user}`, cseq: 1, userAgent: "Phone/1.0", source: "udp:192.0.2.1:5060", tsMs: Date.now(),
        contacts: [{
          contact, expires: Math.floor(Date.now() / 1000) + 3600, q: -1, callid: `call-${user}`, cseq: 1, path: "", received: "", userAgent: "Phone/1.0",
          ruid: `r-${user}`, socket: "udp:127.0.0.1:5060", flags: 0, cflags: 0, methods: 4294967295, instance: "", regId: 0,
        }],
      };
    };
    intake.push(ev("alice"));
    await intake.settled();
    admit = true;
    intake.push(ev("bob"));
    await intake.settled();
    expect((await store.page("loc", { search: "", after: "", limit: 10, nowSec: Math.floor(Date.now() / 1000) })).items.map((c) => c.key)).toEqual(["bob@example.com"]);
    const events = await metrics.registry.getSingleMetricAsString("locmesh_kamailio_events_total");
    expect(events).toContain('locmesh_kamailio_events_total{outcome="refused"} 1');
    expect(events).toContain('locmesh_kamailio_events_total{outcome="applied"} 1');
    await replica.close();
  });
});
