import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import type { WebSocket } from "ws";
import { startDialer } from "../../agent/mesh/dialer.js";
import { createFailbackPolicy } from "../../agent/mesh/failback.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { createMetrics } from "../../agent/ops/metrics.js";

/** Enough of a WebSocket for the dialer: a ready state and a close event. */
function fakeSocket() {
  const ws = Object.assign(new EventEmitter(), {
    readyState: 1,
    close() {
      ws.readyState = 3;
      ws.emit("close", 1006, Buffer.from(""));
    },
  });
  return ws;
}

const until = async (cond: () => boolean) => {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 2));
  expect(cond()).toBe(true);
};

describe("dialer across hub URLs", () => {
  it("tries the next URL after a failure, and moves on to the next hub when a session drops", async () => {
    const tried: string[] = [];
    const sockets: ReturnType<typeof fakeSocket>[] = [];
    let connected = false;
    const dialer = startDialer({
      target: { id: null, urls: ["ws://a", "ws://b", "ws://c"] },
      label: "hub", nodeId: "n1", retry: { minMs: 1, maxMs: 2 },
      log: silentLogger(), metrics: createMetrics({ defaults: false }),
      isConnected: () => connected,
      async connect(url) {
        tried.push(url);
        if (url === "ws://a" && tried.length === 1) throw Object.assign(new Error("ECONNREFUSED"), { transient: true });
        const ws = fakeSocket();
        sockets.push(ws);
        return ws as unknown as WebSocket;
      },
    });
    try {
      await until(() => sockets.length === 1);
      expect(tried).toEqual(["ws://a", "ws://b"]);
      sockets[0]!.close(); // hub b went away: the next attempt is c, not b again
      await until(() => sockets.length === 2);
      expect(tried).toEqual(["ws://a", "ws://b", "ws://c"]);
      expect(dialer.url()).toBe("ws://c");
      connected = true;
      sockets[1]!.close();
      await new Promise((r) => setTimeout(r, 20));
      // A session (say, one the peer dialed) is up: the dialer waits instead of dialing.
      expect(tried).toHaveLength(3);
    } finally {
      dialer.stop("test over");
    }
  });
});

/**
 * A hub dialer over a and b that records each URL it dials and each socket it opens; `before` runs
 * first on every dial (given the URL and the dial's number from 1), and may throw or hold it.
 */
function recordingHubDialer(before: (url: string, n: number) => Promise<void>) {
  const tried: string[] = [];
  const sockets: ReturnType<typeof fakeSocket>[] = [];
  const dialer = startDialer({
    target: { id: null, urls: ["ws://a", "ws://b"] },
    label: "hub", nodeId: "n1", retry: { minMs: 1, maxMs: 2 },
    log: silentLogger(), metrics: createMetrics({ defaults: false }),
    isConnected: () => false,
    async connect(url) {
      tried.push(url);
      await before(url, tried.length);
      const ws = fakeSocket();
      sockets.push(ws);
      return ws as unknown as WebSocket;
    },
  });
  return { dialer, tried, sockets };
}

describe("dialer when a hub asks for a new handshake", () => {
  it("dials the same hub again after a 1012 close (its database lost commits), as after a duplicate session", async () => {
    const { dialer, tried, sockets } = recordingHubDialer(async () => undefined);
    try {
      await until(() => sockets.length === 1);
      await new Promise((r) => setTimeout(r, 10)); // the dialer is waiting for the close
      const ws = sockets[0]!;
      ws.emit("close", 1012, Buffer.from("the hubs' database lost commits; handshake again"));
      ws.readyState = 3;
      await until(() => sockets.length === 2);
      expect(tried).toEqual(["ws://a", "ws://a"]);
    } finally {
      dialer.stop("test over");
    }
  });
});

describe("dialer when the hub list changes under a session", () => {
  it("keeps dialing after a 1012 from a hub reached while SIGHUP changed hub.urls (found by review: the dialer stopped for good)", async () => {
    let releaseDial: (() => void) | null = null;
    const { dialer, tried, sockets } = recordingHubDialer(async (url, n) => {
      if (url === "ws://a" && n === 1) throw Object.assign(new Error("ECONNREFUSED"), { transient: true });
      // The dial of b hangs until the list has changed.
      if (n === 2) await new Promise<void>((r) => (releaseDial = r));
    });
    try {
      await until(() => releaseDial !== null);
      dialer.setUrls(["ws://a", "ws://b", "ws://c"]); // SIGHUP while b is being dialed
      releaseDial!();
      await until(() => sockets.length === 1);
      await new Promise((r) => setTimeout(r, 10));
      const ws = sockets[0]!;
      ws.emit("close", 1012, Buffer.from("the hubs' database lost commits; handshake again"));
      ws.readyState = 3;
      // The same hub again, as after any 1012, and the dialer lives on.
      await until(() => sockets.length === 2);
      expect(tried).toEqual(["ws://a", "ws://b", "ws://b"]);
      sockets[1]!.close();
      await until(() => sockets.length === 3);
      expect(tried.at(-1)).toBe("ws://c");
    } finally {
      dialer.stop("test over");
    }
  });
});

describe("dialer after a refusal", () => {
  it("backs off from a peer that refuses it at once, and waits as long as a peer holding it off says", async () => {
    const dials: number[] = [];
    const closeWith: [number, string][] = [
      [4001, "handshake failed"], [4001, "handshake failed"], [4001, "handshake failed"], [4001, "handshake failed"],
      [4029, "too many refused handshakes from 10.0.0.9; retry in 1 s"],
    ];
    const dialer = startDialer({
      target: { id: "n2", urls: ["ws://n2"] },
      label: "n2", nodeId: "n1", retry: { minMs: 20, maxMs: 10_000 },
      log: silentLogger(), metrics: createMetrics({ defaults: false }),
      isConnected: () => false,
      async connect() {
        dials.push(Date.now());
        const ws = fakeSocket();
        const closing = closeWith[dials.length - 1];
        // The ones after the scripted refusals stay open.
        if (closing) {
          setImmediate(() => {
            ws.readyState = 3;
            ws.emit("close", closing[0], Buffer.from(closing[1]));
          });
        }
        return ws as unknown as WebSocket;
      },
    });
    try {
      await until(() => dials.length === 5);
      const gaps = dials.slice(1).map((t, i) => t - dials[i]!);
      // 20 ms doubling: 40, 80, 160, 320 (timers may run late, never early).
      expect(gaps[0]).toBeGreaterThanOrEqual(38);
      expect(gaps[3]).toBeGreaterThanOrEqual(318);
      expect(gaps[3]!).toBeGreaterThan(gaps[0]! * 4);
      await new Promise((r) => setTimeout(r, 1300));
      expect(dials.length).toBe(6);
      expect(dials[5]! - dials[4]!).toBeGreaterThanOrEqual(995);
    } finally {
      dialer.stop("test over");
    }
  });
});

/**
 * A hub dialer over `urls` (a and b) whose sockets record how they were closed. By default its first
 * dial is refused, so it starts on the second URL; `opened` lets a test hold a connect open.
 */
function hubDialer(o: { afterMs: number | (() => number); probe(url: string): Promise<string>; ready?: () => boolean; urls?: string[]; refuseFirst?: boolean; opened?: (url: string) => Promise<void>; handshakeRefusal?: (url: string) => [number, string] | null }) {
  const tried: string[] = [];
  const sockets: { url: string; ws: ReturnType<typeof fakeSocket>; closedWith: string | null }[] = [];
  const probes: string[] = [];
  const dialer = startDialer({
    target: { id: null, urls: o.urls ?? ["ws://a", "ws://b"] },
    label: "hub", nodeId: "n1", retry: { minMs: 1, maxMs: 2 },
    log: silentLogger(), metrics: createMetrics({ defaults: false }),
    isConnected: () => sockets.some((s) => s.closedWith === null) && (o.ready?.() ?? true),
    failback: {
      newPolicy: () => createFailbackPolicy({ afterMs: typeof o.afterMs === "number" ? o.afterMs : o.afterMs(), random: () => 0 }),
      probe: (url) => {
        probes.push(url);
        return o.probe(url);
      },
    },
    async connect(url) {
      tried.push(url);
      if (tried.length === 1 && (o.refuseFirst ?? true)) throw Object.assign(new Error("ECONNREFUSED"), { transient: true });
      await o.opened?.(url);
      const ws = fakeSocket();
      const entry = { url, ws, closedWith: null as string | null };
      const close = (code?: number, reason?: string) => {
        entry.closedWith = `${code} ${reason}`;
        ws.readyState = 3;
        ws.emit("close", code ?? 1005, Buffer.from(reason ?? ""));
      };
      ws.close = close;
      sockets.push(entry);
      // A hub that takes the connection and then refuses the handshake closes it at once.
      const refusal = o.handshakeRefusal?.(url) ?? null;
      if (refusal) setImmediate(() => close(refusal[0], refusal[1]));
      return ws as unknown as WebSocket;
    },
  });
  return { dialer, tried, sockets, probes };
}

describe("dialer failing back to the first hub URL", () => {
  const onSecondHub = hubDialer;

  it("stays on the second hub while the first fails checks, and moves back once two checks in a row found it up", async () => {
    let up = false;
    const d = onSecondHub({ afterMs: 5, probe: async () => (up ? "hub-a" : Promise.reject(new Error("ECONNREFUSED"))) });
    try {
      await until(() => d.probes.length >= 3);
      expect(d.sockets.map((s) => s.url)).toEqual(["ws://b"]);
      expect(d.sockets[0]!.closedWith).toBeNull();
      expect(d.probes.every((u) => u === "ws://a")).toBe(true);
      up = true;
      await until(() => d.sockets.length === 2);
      expect(d.sockets[0]!.closedWith).toBe("1000 moving back to the preferred hub");
      expect(d.sockets[1]!.url).toBe("ws://a");
      expect(d.tried).toEqual(["ws://a", "ws://b", "ws://a"]);
      // On the first hub: no more checks.
      const checks = d.probes.length;
      await new Promise((r) => setTimeout(r, 60));
      expect(d.probes.length).toBe(checks);
      expect(d.dialer.lastError()).toBeNull();
    } finally {
      d.dialer.stop("test over");
    }
  });

  it("never checks with failback off, and moves at once when asked (SIGHUP) if the first hub answers", async () => {
    let up = false;
    const d = onSecondHub({ afterMs: 0, probe: async () => (up ? "hub-a" : Promise.reject(new Error("closed: 4013 PostgreSQL unreachable"))) });
    try {
      await until(() => d.sockets.length === 1);
      await new Promise((r) => setTimeout(r, 30));
      expect(d.probes).toEqual([]);
      expect(await d.dialer.failBackNow()).toMatch(/does not take sessions \(closed: 4013 PostgreSQL unreachable\); staying on ws:\/\/b/);
      expect(d.sockets[0]!.closedWith).toBeNull();
      up = true;
      expect(await d.dialer.failBackNow()).toBe("moving to the preferred hub hub-a (ws://a)");
      await until(() => d.sockets.length === 2);
      expect(d.sockets[1]!.url).toBe("ws://a");
      expect(await d.dialer.failBackNow()).toBe("already on the preferred hub");
    } finally {
      d.dialer.stop("test over");
    }
  });

  /** On the second hub after the first took the connection and refused the handshake with `close`; checks always find it up. */
  async function refusedByFirst(close: [number, string]) {
    let refuse = true;
    const d = onSecondHub({ afterMs: 3, refuseFirst: false, probe: async () => "hub-a", handshakeRefusal: (url) => (url === "ws://a" && refuse ? close : null) });
    await until(() => d.sockets.some((s) => s.url === "ws://b"));
    return { d, stopRefusing: () => (refuse = false) };
  }

  it("stops checking a first hub that refused its handshake (its checks cannot tell), until a SIGHUP asks", async () => {
    const { d, stopRefusing } = await refusedByFirst([4001, "server proof failed"]);
    try {
      // The checks would find hub a up (it sends its challenge) and move there every few intervals.
      await new Promise((r) => setTimeout(r, 60));
      expect(d.probes).toEqual([]);
      expect(d.sockets.map((s) => s.url)).toEqual(["ws://a", "ws://b"]);
      // The operator fixed the hub's mesh.agents and sent SIGHUP: one check, and the move.
      stopRefusing();
      expect(await d.dialer.failBackNow()).toBe("moving to the preferred hub hub-a (ws://a)");
      await until(() => d.sockets.length === 3);
      expect(d.sockets[2]!.url).toBe("ws://a");
      await new Promise((r) => setTimeout(r, 20));
      expect(d.sockets[2]!.closedWith).toBeNull();
    } finally {
      d.dialer.stop("test over");
    }
  });

  for (const close of [[4013, "PostgreSQL unreachable"], [4001, "handshake failed with hub-a: no answer to hello"]] as [number, string][]) {
    it(`goes on checking a first hub that refused for a passing reason (${close.join(" ")})`, async () => {
      const { d, stopRefusing } = await refusedByFirst(close);
      try {
        stopRefusing();
        await until(() => d.sockets.length === 3);
        expect(d.sockets[2]!.url).toBe("ws://a");
        expect(d.probes.length).toBeGreaterThanOrEqual(2);
      } finally {
        d.dialer.stop("test over");
      }
    });
  }

  it("checks a first hub that refused it again once a session with it held (fixed on the hub's side, no SIGHUP here)", async () => {
    const { d, stopRefusing } = await refusedByFirst([4001, "unauthorized: hello refused"]);
    try {
      stopRefusing();
      // Hub b drops the agent: it dials a, which takes it now, and holds past the refusal window.
      (d.sockets[1]!.ws.close as (code: number, reason: string) => void)(1006, "gone");
      await until(() => d.sockets.length === 3 && d.sockets[2]!.url === "ws://a");
      await new Promise((r) => setTimeout(r, 5100));
      // Hub a restarts: the agent lands on b, and checks a again (and moves back) by itself.
      (d.sockets[2]!.ws.close as (code: number, reason: string) => void)(1006, "restarting");
      await until(() => d.sockets.length === 5);
      expect(d.sockets.map((s) => s.url)).toEqual(["ws://a", "ws://b", "ws://a", "ws://b", "ws://a"]);
      expect(d.probes.length).toBeGreaterThanOrEqual(2);
    } finally {
      d.dialer.stop("test over");
    }
  }, 15_000);

  it("neither checks nor moves while the session on the second hub is still in its handshake", async () => {
    let ready = false;
    const d = onSecondHub({ afterMs: 2, probe: async () => "hub-a", ready: () => ready });
    try {
      await until(() => d.sockets.length === 1);
      await new Promise((r) => setTimeout(r, 40));
      expect(d.probes).toEqual([]);
      expect(await d.dialer.failBackNow()).toBe("the hub session is not ready yet; try again in a moment");
      expect(d.sockets[0]!.closedWith).toBeNull();
      ready = true;
      await until(() => d.sockets.length === 2);
      expect(d.sockets[1]!.url).toBe("ws://a");
    } finally {
      d.dialer.stop("test over");
    }
  });

  it("answers a rebalance asked just as the session closes, instead of never", async () => {
    const d = onSecondHub({ afterMs: 0, probe: async () => "hub-a" });
    try {
      await until(() => d.sockets.length === 1);
      d.sockets[0]!.ws.close(); // the session ends, and SIGHUP asks before the dialer has seen it
      const outcome = await Promise.race([d.dialer.failBackNow(), new Promise((r) => setTimeout(() => r("no answer"), 1000))]);
      expect(outcome).toBe("the hub session closed; the agent dials as after any drop");
    } finally {
      d.dialer.stop("test over");
    }
  });

  it("fails over at once when the session drops during a check, without waiting for the check", async () => {
    let answerCheck = (_hubId: string) => undefined as void;
    const d = onSecondHub({ afterMs: 2, probe: () => new Promise((r) => (answerCheck = r)) });
    try {
      await until(() => d.probes.length === 1);
      d.sockets[0]!.ws.close(); // hub b went away while the check of a hangs
      await until(() => d.sockets.length === 2);
      expect(d.sockets[1]!.url).toBe("ws://a");
    } finally {
      answerCheck("hub-a");
      d.dialer.stop("test over");
    }
  });
});

describe("dialer given new hub URLs (SIGHUP)", () => {
  it("keeps a session whose hub is still listed, and then fails over to the one after it in the new order", async () => {
    const d = hubDialer({ afterMs: 0, probe: async () => "hub-x", urls: ["ws://a", "ws://b"], refuseFirst: false });
    try {
      await until(() => d.sockets.length === 1);
      expect(d.dialer.setUrls(["ws://c", "ws://a", "ws://d"])).toBe(
        "on ws://a for now (still listed); the first of hub.urls is ws://c: the agent moves there once a check finds it taking sessions (a SIGHUP checks at once, then failback's checks go on)",
      );
      expect(d.sockets[0]!.closedWith).toBeNull();
      expect(d.dialer.target.urls).toEqual(["ws://c", "ws://a", "ws://d"]);
      d.sockets[0]!.ws.close(); // hub a went away: next is d, after a in the new list
      await until(() => d.sockets.length === 2);
      expect(d.tried).toEqual(["ws://a", "ws://d"]);
    } finally {
      d.dialer.stop("test over");
    }
  });

  it("closes the session with a hub no longer listed and dials the new list from its start, with no error", async () => {
    const d = hubDialer({ afterMs: 0, probe: async () => "hub-x" });
    try {
      await until(() => d.sockets.length === 1);
      expect(d.dialer.setUrls(["ws://c", "ws://a"])).toBe("closing the session with ws://b (no longer listed); dialing ws://c first");
      expect(d.sockets[0]!.closedWith).toBe("1000 hub no longer in hub.urls");
      await until(() => d.sockets.length === 2);
      expect(d.sockets[1]!.url).toBe("ws://c");
      expect(d.dialer.lastError()).toBeNull();
      expect(await d.dialer.failBackNow()).toBe("already on the preferred hub");
    } finally {
      d.dialer.stop("test over");
    }
  });

  it("moves at once, when asked, to a new first hub that answers, and stops checking once its hub is first", async () => {
    const d = hubDialer({ afterMs: 0, probe: async (url) => `hub-${url.slice(5)}` });
    try {
      await until(() => d.sockets.length === 1); // on b, the second of [a, b]
      d.dialer.setUrls(["ws://b", "ws://a"]);
      expect(await d.dialer.failBackNow()).toBe("already on the preferred hub");
      d.dialer.setUrls(["ws://c", "ws://b"]);
      expect(await d.dialer.failBackNow()).toBe("moving to the preferred hub hub-c (ws://c)");
      await until(() => d.sockets.length === 2);
      expect(d.sockets[1]!.url).toBe("ws://c");
      expect(d.probes).toEqual(["ws://c"]);
    } finally {
      d.dialer.stop("test over");
    }
  });

  it("closes a connection that opens to a hub dropped while it was being dialed", async () => {
    let open = () => undefined as void;
    const d = hubDialer({ afterMs: 0, probe: async () => "hub-x", refuseFirst: false, opened: (url) => (url === "ws://a" ? new Promise<void>((r) => (open = r)) : Promise.resolve()) });
    try {
      await until(() => d.tried.length === 1);
      expect(d.dialer.setUrls(["ws://b"])).toBe("not connected to a hub; dialing ws://b first");
      open();
      await until(() => d.sockets.length === 2);
      expect(d.sockets[0]).toMatchObject({ url: "ws://a", closedWith: "1000 hub no longer in hub.urls" });
      expect(d.sockets[1]).toMatchObject({ url: "ws://b", closedWith: null });
    } finally {
      d.dialer.stop("test over");
    }
  });
});

describe("dialer given a new failback interval (SIGHUP)", () => {
  it("starts checking the first hub when failback is turned on, and moves back once it answers", async () => {
    let afterMs = 0;
    const d = hubDialer({ afterMs: () => afterMs, probe: async () => "hub-a" });
    try {
      await until(() => d.sockets.length === 1); // on b, the second of [a, b]
      await new Promise((r) => setTimeout(r, 30));
      expect(d.probes).toEqual([]);
      afterMs = 5;
      expect(d.dialer.renewFailback()).toBe("on ws://b, not the first of hub.urls: the checks of ws://a start over as failback now says");
      await until(() => d.sockets.length === 2);
      expect(d.sockets[0]!.closedWith).toBe("1000 moving back to the preferred hub");
      expect(d.sockets[1]!.url).toBe("ws://a");
      expect(d.probes.length).toBeGreaterThanOrEqual(2);
      expect(d.dialer.renewFailback()).toBe("on ws://a, the first of hub.urls; failback applies after the next failover");
    } finally {
      d.dialer.stop("test over");
    }
  });

  it("does not wait out the old interval: a shorter one applies from now", async () => {
    let afterMs = 60_000;
    const d = hubDialer({ afterMs: () => afterMs, probe: async () => "hub-a" });
    try {
      await until(() => d.sockets.length === 1);
      afterMs = 5;
      d.dialer.renewFailback();
      await until(() => d.sockets.length === 2);
      expect(d.sockets[1]!.url).toBe("ws://a");
    } finally {
      d.dialer.stop("test over");
    }
  });

  it("stops checking when failback is turned off", async () => {
    let afterMs = 5;
    const d = hubDialer({ afterMs: () => afterMs, probe: async () => Promise.reject(new Error("ECONNREFUSED")) });
    try {
      await until(() => d.probes.length >= 1);
      afterMs = 0;
      d.dialer.renewFailback();
      const checks = d.probes.length;
      await new Promise((r) => setTimeout(r, 60));
      expect(d.probes.length).toBeLessThanOrEqual(checks + 1); // at most the one already under way
      expect(d.sockets.map((s) => s.closedWith)).toEqual([null]);
    } finally {
      d.dialer.stop("test over");
    }
  });
});
