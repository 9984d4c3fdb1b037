/**
 * The reconcile against a slow ul.dump: Kamailio prints each contact's seconds remaining while it
 * builds the reply, so expiries read from a dump that took seconds come out that much late. Such
 * contacts are not "repaired" (rewritten) on every run; a real difference still is.
 */
import { afterEach, describe, expect, it } from "vitest";
import { HLC_UNITS_PER_MS } from "../../agent/contract/records.js";
import type { ReplicaStore } from "../../agent/core/store.js";
import { openSqliteStore } from "../../agent/journal/sqlite-store.js";
import { planReconcile } from "../../agent/kamailio/reconciler.js";
import { UL_ADD_CALLID } from "../../agent/kamailio/registrar-input.js";
import type { UsrlocContact } from "../../agent/kamailio/usrloc-contact.js";
import { binding, remoteChange } from "../support/fixtures.js";

const NOW = 1_800_000_000;
const EXPIRES = NOW + 3600;
const OTHER = "n2~0000000000000002";

let store: ReplicaStore | null = null;
afterEach(async () => {
  await store?.close();
  store = null;
});

/** Another node's binding in the journal, and Kamailio's copy of it as a dump read `lateSec` late shows it. */
async function plan(lateSec: number, dumpSec: number) {
  store = openSqliteStore({ path: ":memory:", nodeId: "n1" });
  const value = binding({ owner: "n2", expires: EXPIRES });
  await store.applyRemote({ origin: OTHER, after: 0, upTo: 1, changes: [remoteChange(OTHER, 1, (NOW - 60) * 1000 * HLC_UNITS_PER_MS, { kind: "loc", key: "a@example.com", sub: "sip:a@192.0.2.1", value })] });
  const held: UsrlocContact = {
    ...value, callid: UL_ADD_CALLID, expires: EXPIRES + lateSec,
    table: "location", aor: "a@example.com", contact: "sip:a@192.0.2.1", status: "active", serverId: 0, tcpconnId: -1, lastModified: NOW - 60, state: "CS_NEW",
  };
  return planReconcile(store, {
    nodeId: "n1", dump: [held], dumpStartMs: NOW * 1000, dumpSec, clockLeadMs: 0, nowSec: NOW, locationTable: "location", aliasTable: null,
    isPending: () => false, writtenAt: () => undefined,
  });
}

describe("reconcile after a slow ul.dump", () => {
  it("leaves alone a contact whose expiry reads late by no more than the dump took", async () => {
    expect((await plan(7, 6.2)).repairs).toEqual([]);
  });

  it("still rewrites one whose expiry is off by more", async () => {
    expect((await plan(7, 1)).repairs).toMatchObject([{ op: "add", aor: "a@example.com", binding: { expires: EXPIRES } }]);
  });
});
