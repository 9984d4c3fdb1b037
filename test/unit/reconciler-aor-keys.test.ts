/**
 * The ul.dump reconciliation (agent/kamailio/reconciler.ts) never takes a journal binding for gone
 * because Kamailio keys its AoR otherwise. The operator's dry run: with usrloc use_domain 0 the
 * table held `alice` for the journal's `alice@example.com`, and the restart's reconcile turned every
 * binding of the node into a tombstone and learned the domainless AoRs.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { ReplicaStore } from "../../agent/core/store.js";
import { openSqliteStore } from "../../agent/journal/sqlite-store.js";
import { UL_ADD_CALLID } from "../../agent/kamailio/registrar-input.js";
import { planReconcile, type ReconcileInput } from "../../agent/kamailio/reconciler.js";
import type { UsrlocContact } from "../../agent/kamailio/usrloc-contact.js";
import { UsrlocKeysError } from "../../agent/kamailio/usrloc-keys.js";
import { binding, counterStamp, locDraft } from "../support/fixtures.js";

const ME = "n1";
const NOW = 1_800_000_000;
const open: ReplicaStore[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});

function inKamailio(aor: string, contact: string, over: Partial<UsrlocContact> = {}): UsrlocContact {
  return {
    ...binding({ expires: NOW + 3600, callid: `reg-${contact}` }),
    table: "location", aor, contact, status: "active", serverId: 0, tcpconnId: -1, lastModified: NOW - 100, state: "CS_NEW",
    ...over,
  };
}

/** This node's alice and carol, and bob from another node, journaled well before the dump. */
async function journal(): Promise<ReplicaStore> {
  const store = openSqliteStore({ path: ":memory:", nodeId: ME });
  open.push(store);
  const mine = (contact: string) => binding({ owner: ME, expires: NOW + 3600, callid: `reg-${contact}` });
  await store.commitLocal([
    locDraft("alice@example.com", "sip:alice@192.0.2.1", mine("sip:alice@192.0.2.1")),
    locDraft("carol@example.com", "sip:carol@192.0.2.3", mine("sip:carol@192.0.2.3")),
    locDraft("bob@example.com", "sip:bob@192.0.2.2", binding({ owner: "n2", expires: NOW + 3600 })),
  ], counterStamp((NOW - 600) * 1000 * 1024));
  return store;
}

const input = (dump: UsrlocContact[]): ReconcileInput => ({
  nodeId: ME, dump, dumpStartMs: NOW * 1000, clockLeadMs: 0, locationTable: "location", aliasTable: "aliases", nowSec: NOW,
  isPending: () => false, writtenAt: () => undefined,
});

describe("reconcile against a Kamailio that keys AoRs otherwise than the journal", () => {
  it("refuses a table keyed without domains (use_domain 0) whole, saying what to set, instead of tombstoning the journal", async () => {
    const store = await journal();
    const dump = [
      inKamailio("alice", "sip:alice@192.0.2.1"),
      inKamailio("carol", "sip:carol@192.0.2.3"),
      inKamailio("bob", "sip:bob@192.0.2.2", { callid: UL_ADD_CALLID }),
    ];
    const plan = planReconcile(store, input(dump));
    await expect(plan).rejects.toBeInstanceOf(UsrlocKeysError);
    await expect(plan).rejects.toThrow(/holds "alice"\): modparam\("usrloc", "use_domain"\) is 0.*set modparam\("usrloc", "use_domain", 1\) in kamailio\.cfg/);
  });

  it("refuses it when only the aliases domain shows it", async () => {
    const store = await journal();
    const dump = [inKamailio("alice@example.com", "sip:alice@192.0.2.1"), inKamailio("nick", "sip:alice@example.com", { table: "aliases", expires: 0 })];
    await expect(planReconcile(store, input(dump))).rejects.toThrow(/holds "nick"/);
  });

  it("leaves alone an AoR the journal would key otherwise (the registrar's case_sensitive), and the journal binding it stands for", async () => {
    const store = await journal();
    const dump = [
      inKamailio("Alice@Example.com", "sip:alice@192.0.2.1"),
      inKamailio("carol@example.com", "sip:carol@192.0.2.3"),
      inKamailio("bob@example.com", "sip:bob@192.0.2.2", { callid: UL_ADD_CALLID, expires: NOW + 3600 }),
      inKamailio("dave;x@example.com", "sip:dave@192.0.2.4"),
    ];
    const plan = await planReconcile(store, input(dump));
    expect(plan.drafts).toEqual([]);
    expect(plan.repairs).toEqual([]);
  });
});
