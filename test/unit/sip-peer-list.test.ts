import { describe, expect, it } from "vitest";
import type { KamailioInstance } from "../../agent/kamailio/core-rpc.js";
import { KamailioRpcError, KamailioUnavailableError } from "../../agent/kamailio/jsonrpcs-wire.js";
import { OLD_INCLUDE, createSipPeerList } from "../../agent/kamailio/sip-peer-list.js";
import type { SipPeers } from "../../agent/kamailio/sip-peers.js";
import { capturedLog } from "../support/captured-log.js";

/** A Kamailio's shared variables as the include defines them; `missing` ones answer 404 as pv.shvGet/shvSet do. */
function fakeKamailio(vars: Record<string, string | number>) {
  const sets: string[] = [];
  let down = false;
  const missing = () => new KamailioRpcError(404, "Variable not found", "pv.shvSet");
  return {
    vars, sets,
    setDown(d: boolean) { down = d; },
    core: {
      async getShv(name: string) {
        if (down) throw new KamailioUnavailableError("ECONNREFUSED", "no reader");
        if (!(name in vars)) throw missing();
        return vars[name]!;
      },
      async setShvString(name: string, value: string) {
        if (down) throw new KamailioUnavailableError("ECONNREFUSED", "no reader");
        if (!(name in vars)) throw missing();
        vars[name] = value;
        sets.push(value);
      },
    },
  };
}

const first: KamailioInstance = { mainPid: 100, upSince: "Mon Nov 23 01:00:00 2026", uptimeSec: 1 };
const second: KamailioInstance = { mainPid: 200, upSince: "Mon Nov 23 01:05:00 2026", uptimeSec: 1 };
const fromMesh = (...peers: string[]): SipPeers => ({ peers, from: "mesh.peers" });
const fromConfig = (...peers: string[]): SipPeers => ({ peers, from: "kamailio.sipPeers" });

function setup(initial: SipPeers, vars: Record<string, string | number> = { locmesh_peers: "10.0.0.2", locmesh_peers_fixed: 0 }) {
  const kam = fakeKamailio(vars);
  const { log, lines } = capturedLog();
  let instance: KamailioInstance | null = first;
  const list = createSipPeerList({ core: kam.core, instance: () => instance, initial, log });
  return { kam, lines, list, restart: (i: KamailioInstance | null) => (instance = i) };
}

describe("the list of nodes kept in Kamailio", () => {
  it("is set once per Kamailio instance, and again after a restart or a changed config", async () => {
    const t = setup(fromMesh("10.0.0.2", "10.0.0.3"));
    await t.list.sync();
    await t.list.sync();
    expect(t.kam.sets).toEqual(["10.0.0.2,10.0.0.3"]);
    expect(t.list.status()).toEqual({ state: "set", peers: ["10.0.0.2", "10.0.0.3"], note: null });
    expect(t.lines.some((l) => l.msg === "Kamailio lets these nodes relay calls to its phones: 10.0.0.2, 10.0.0.3")).toBe(true);
    t.restart(second);
    // A new instance starts with the include's list: not yet ours.
    expect(t.list.status().state).toBe("pending");
    await t.list.sync();
    expect(t.kam.sets).toEqual(["10.0.0.2,10.0.0.3", "10.0.0.2,10.0.0.3"]);
    t.list.want(fromMesh("10.0.0.2", "10.0.0.3", "10.0.0.4"));
    await t.list.sync();
    await t.list.sync();
    expect(t.kam.vars["locmesh_peers"]).toBe("10.0.0.2,10.0.0.3,10.0.0.4");
    expect(t.kam.sets).toHaveLength(3);
    t.list.want(fromMesh());
    await t.list.sync();
    expect(t.kam.vars["locmesh_peers"]).toBe("");
  });

  it("sets nothing before an instance is known, and retries a failed set at every sync, warning once", async () => {
    const t = setup(fromMesh("10.0.0.3"));
    t.restart(null);
    await t.list.sync();
    expect(t.kam.sets).toEqual([]);
    t.restart(first);
    t.kam.setDown(true);
    await t.list.sync();
    await t.list.sync();
    expect(t.lines.filter((l) => l.level === 40 && /could not set \$shv\(locmesh_peers\)/.test(l.msg))).toHaveLength(1);
    expect(t.list.status()).toEqual({ state: "pending", peers: ["10.0.0.3"], note: "no reader" });
    t.kam.setDown(false);
    await t.list.sync();
    expect(t.kam.sets).toEqual(["10.0.0.3"]);
  });

  it("does not let a set still in flight overtake a SIGHUP's (the datagram transport may answer out of order)", async () => {
    const t = setup(fromMesh("10.0.0.2"));
    const delays = [50, 0];
    const set = t.kam.core.setShvString;
    t.kam.core.setShvString = async (name, value) => {
      await new Promise((r) => setTimeout(r, delays.shift() ?? 0));
      await set(name, value);
    };
    const first = t.list.sync();
    t.list.want(fromMesh("10.0.0.2", "10.0.0.4"));
    await Promise.all([first, t.list.sync()]);
    expect(t.kam.vars["locmesh_peers"]).toBe("10.0.0.2,10.0.0.4");
  });

  it("leaves a list fixed with --peers alone unless the config sets kamailio.sipPeers", async () => {
    const t = setup(fromMesh("10.0.0.3"), { locmesh_peers: "192.0.2.7", locmesh_peers_fixed: 1 });
    await t.list.sync();
    await t.list.sync();
    expect(t.kam.sets).toEqual([]);
    expect(t.lines.filter((l) => /fixed with `locmesh kamailio-cfg --peers`/.test(l.msg))).toHaveLength(1);
    expect(t.list.status()).toMatchObject({ state: "fixed", peers: null });
    t.list.want(fromConfig("10.0.0.3", "10.0.0.4"));
    await t.list.sync();
    expect(t.kam.vars["locmesh_peers"]).toBe("10.0.0.3,10.0.0.4");
  });

  it("says once per instance that an include without the list must be regenerated", async () => {
    const t = setup(fromConfig("10.0.0.3"), {});
    await t.list.sync();
    await t.list.sync();
    expect(t.lines.filter((l) => l.msg === OLD_INCLUDE)).toHaveLength(1);
    expect(t.list.status()).toEqual({ state: "old include", peers: null, note: OLD_INCLUDE });
    t.restart(second);
    await t.list.sync();
    expect(t.lines.filter((l) => l.msg === OLD_INCLUDE)).toHaveLength(2);
    expect(t.kam.sets).toEqual([]);
  });

  it("touches nothing when the config gives no list, and says why once", async () => {
    const t = setup({ peers: null, why: "the agent config uses a hub" });
    await t.list.sync();
    await t.list.sync();
    expect(t.kam.sets).toEqual([]);
    expect(t.lines.filter((l) => /as it is \(the include's, or the last one this agent set\): the agent config uses a hub/.test(l.msg))).toHaveLength(1);
    expect(t.list.status()).toEqual({ state: "not managed", peers: null, note: "the agent config uses a hub" });
  });
});
