import { describe, expect, it } from "vitest";
import { createApiEditBatches } from "../../agent/kamailio/api-edit-batches.js";
import { bindingKey } from "../../agent/kamailio/install-plan.js";
import type { ApiEdits } from "../../agent/kamailio/reconciler.js";

/** A turn-taking lock like attachment.ts's, whose current holder the test releases by hand. */
function manualLock() {
  let serial: Promise<unknown> = Promise.resolve();
  return {
    exclusive<T>(fn: () => Promise<T>): Promise<T> {
      const run = serial.then(fn, fn);
      serial = run.catch(() => undefined);
      return run;
    },
    /** Holds the lock until the returned function is called (a reconcile that runs meanwhile). */
    hold(): () => void {
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      void this.exclusive(() => held);
      return release;
    },
  };
}

function setup(max = 100) {
  const lock = manualLock();
  const runs: Map<string, { aor: string; hlc: number }>[] = [];
  const batches = createApiEditBatches({
    exclusive: (fn) => lock.exclusive(fn),
    max,
    run: (edits: ApiEdits) => {
      runs.push(new Map(edits.keys));
      return Promise.resolve(null);
    },
  });
  return { lock, runs, batches };
}

const edit = (user: string, hlc: number) => ({ aor: `${user}@example.com`, contact: `sip:${user}@10.0.0.1`, hlc });

describe("API edit batches (location.publish into this node's Kamailio)", () => {
  it("joins the edits of callers that arrive while a batch waits for its turn into that one batch", async () => {
    const { lock, runs, batches } = setup();
    const release = lock.hold();
    const a = batches.add([edit("alice", 1)]);
    const b = batches.add([edit("bob", 2), edit("carol", 3)]);
    expect(runs).toHaveLength(0); // nothing runs beside the held turn
    release();
    expect(await Promise.all([a, b])).toEqual([null, null]);
    expect(runs).toHaveLength(1);
    expect([...runs[0]!.keys()].sort()).toEqual(
      [bindingKey("alice@example.com", "sip:alice@10.0.0.1"), bindingKey("bob@example.com", "sip:bob@10.0.0.1"), bindingKey("carol@example.com", "sip:carol@10.0.0.1")].sort(),
    );
  });

  it("keeps the newer stamp when an older one (a retry of a waiting edit) joins after it", async () => {
    const { lock, runs, batches } = setup();
    const release = lock.hold();
    const api = batches.add([edit("alice", 20)]);
    const retry = batches.add([edit("alice", 10)]);
    release();
    expect(await Promise.all([api, retry])).toEqual([null, null]);
    expect(runs[0]!.get(bindingKey("alice@example.com", "sip:alice@10.0.0.1"))?.hlc).toBe(20);
  });

  it("keeps a binding's later edit, with its newer stamp, when one batch takes both", async () => {
    const { lock, runs, batches } = setup();
    const release = lock.hold();
    const first = batches.add([edit("alice", 10)]);
    const second = batches.add([edit("alice", 20)]);
    release();
    await Promise.all([first, second]);
    expect(runs).toEqual([new Map([[bindingKey("alice@example.com", "sip:alice@10.0.0.1"), { aor: "alice@example.com", hlc: 20 }]])]);
  });

  it("starts the next batch for edits that arrive once a batch has started", async () => {
    const { lock, batches } = setup();
    const seen: number[][] = [];
    let releaseRun!: () => void;
    const running = new Promise<void>((r) => (releaseRun = r));
    const slow = createApiEditBatches({
      exclusive: (fn) => lock.exclusive(fn),
      max: 100,
      run: async (edits) => {
        seen.push([...edits.keys.values()].map((v) => v.hlc));
        if (seen.length === 1) await running; // the first batch is writing
        return null;
      },
    });
    const first = slow.add([edit("alice", 1)]);
    await new Promise((r) => setImmediate(r)); // the first batch has taken its turn
    const second = slow.add([edit("bob", 2)]);
    releaseRun();
    await Promise.all([first, second]);
    expect(seen).toEqual([[1], [2]]); // bob's edit did not slip into the batch already writing
    expect(await batches.add([])).toBeNull(); // an empty publish waits for nothing
  });

  it("refuses edits past the cap with what to do, and takes them again once the batch has run", async () => {
    const { lock, runs, batches } = setup(2);
    const release = lock.hold();
    const taken = batches.add([edit("alice", 1), edit("bob", 2)]);
    const refused = await batches.add([edit("carol", 3)]);
    expect(refused).toMatch(/^2 edits wait for this node's Kamailio already: these are kept in the journal and tried again/);
    release();
    expect(await taken).toBeNull();
    expect(runs.map((r) => r.size)).toEqual([2]); // carol was not added behind the refusal
    expect(await batches.add([edit("carol", 3)])).toBeNull();
    expect(runs.map((r) => r.size)).toEqual([2, 1]);
  });

  it("tells every caller of a batch why it did not run", async () => {
    const lock = manualLock();
    const batches = createApiEditBatches({
      exclusive: (fn) => lock.exclusive(fn), max: 100,
      run: () => Promise.resolve("Kamailio does not answer"),
    });
    const release = lock.hold();
    const a = batches.add([edit("alice", 1)]);
    const b = batches.add([edit("bob", 2)]);
    release();
    expect(await Promise.all([a, b])).toEqual(["Kamailio does not answer", "Kamailio does not answer"]);
  });
});
