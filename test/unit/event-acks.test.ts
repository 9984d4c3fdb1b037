/**
 * What the agent acknowledges to Kamailio's include (event-acks.ts): the number up to which every
 * event read is journaled, whatever order the AoRs' events finish in; at most one RPC per interval;
 * nothing again for a connection that starts over; a failing RPC logged once per run.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { createEventAcks, type EventAcks } from "../../agent/kamailio/event-acks.js";
import { createLogger } from "../../agent/ops/logger.js";
import { eventNumberOf } from "../../agent/kamailio/register-event.js";

const made: EventAcks[] = [];
afterEach(() => {
  for (const a of made.splice(0)) a.close();
  vi.useRealTimers();
});

function setup(send: (n: number) => Promise<void> = async () => undefined) {
  const lines: { level: string; msg: string }[] = [];
  const log = createLogger({ level: "info", nodeId: "n1", destination: { write: (line: string) => void lines.push(JSON.parse(line) as { level: string; msg: string }) } });
  const sent: number[] = [];
  const acks = createEventAcks({ send: (n) => (sent.push(n), send(n)), log, intervalMs: 100 });
  made.push(acks);
  return { acks, sent, lines };
}

describe("event acknowledgements", () => {
  it("acknowledges up to the last event before the first one still being journaled", () => {
    const { acks } = setup();
    const done = [11, 12, 13, 14].map((n) => acks.taken(n));
    expect(acks.done()).toBeNull();
    done[1]!();
    done[3]!();
    expect(acks.done()).toBeNull();
    done[0]!();
    expect(acks.done()).toBe(12);
    done[2]!();
    expect(acks.done()).toBe(14);
  });

  it("sends at most once per interval, only when the mark moved, and the last one on flush", async () => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
    const { acks, sent } = setup();
    for (let n = 1; n <= 50; n++) acks.taken(n)();
    await vi.advanceTimersByTimeAsync(100);
    expect(sent).toEqual([50]);
    await vi.advanceTimersByTimeAsync(300);
    expect(sent).toEqual([50]);
    acks.taken(51)();
    await acks.flush();
    expect(sent).toEqual([50, 51]);
  });

  it("after a reset (a new connection) acknowledges only what the new connection carried", async () => {
    const { acks, sent } = setup();
    const old = acks.taken(900);
    acks.reset();
    acks.taken(1)();
    old();
    expect(acks.done()).toBe(1);
    await acks.flush();
    expect(sent).toEqual([1]);
  });

  it("sends nothing while the event connection is down, and a send begun before a reconnect counts for nothing after it", async () => {
    let release = () => undefined as void;
    let held = false;
    // The first send is held on its way until the test releases it.
    const { acks, sent } = setup(() => (held ? Promise.resolve() : ((held = true), new Promise<void>((r) => (release = r)))));
    acks.taken(5)();
    acks.pause();
    await acks.flush();
    expect(sent).toEqual([]);
    acks.reset();
    acks.taken(7)();
    const first = acks.flush();
    await new Promise((r) => setImmediate(r));
    expect(sent).toEqual([7]);
    // Kamailio restarts (a reconnect) while 7 is on its way; the new connection reads 7 again.
    acks.pause();
    acks.reset();
    release();
    await first;
    acks.taken(7)();
    await acks.flush();
    expect(sent).toEqual([7, 7]);
  });

  it("logs a failing acknowledgement once per run of failures, and says when it works again", async () => {
    let fail = true;
    const { acks, lines } = setup(async () => {
      if (fail) throw new Error("jsonrpcs: no reply");
    });
    acks.taken(1)();
    await acks.flush();
    acks.taken(2)();
    await acks.flush();
    expect(lines.filter((l) => l.msg.startsWith("cannot acknowledge registrar events"))).toHaveLength(1);
    fail = false;
    await acks.flush();
    expect(lines.some((l) => l.msg === "registrar events are acknowledged to Kamailio again")).toBe(true);
  });

  it("reads the number at the head of an event it cannot otherwise read", () => {
    expect(eventNumberOf('{"n":4711,"v":2,"event":"register",garbage')).toBe(4711);
    expect(eventNumberOf('{"v":2,"event":"register","n":5}')).toBeNull();
    expect(eventNumberOf('{"n":0,"v":2')).toBeNull();
    expect(eventNumberOf('{"n":99999999999,"v":2')).toBeNull();
  });
});
