import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { handleSignals, STOP_TIMEOUT_MS } from "../../agent/ops/daemon.js";
import { capturedLog } from "../support/captured-log.js";

const SIGNALS = ["SIGTERM", "SIGINT", "SIGHUP"] as const;

/** A daemon whose close() resolves when the test says so. */
function daemon() {
  let finish!: () => void;
  const closed = new Promise<void>((r) => (finish = r));
  const d = { close: vi.fn(() => closed) };
  return { d, finish };
}

describe("handleSignals", () => {
  let before: Map<string, ((...args: never[]) => unknown)[]>;
  beforeEach(() => {
    before = new Map(SIGNALS.map((s) => [s, process.listeners(s)]));
    vi.useFakeTimers();
  });
  afterEach(() => {
    // Take off only what the test put on (vitest's own listeners stay).
    for (const s of SIGNALS) for (const l of process.listeners(s)) if (!before.get(s)!.includes(l)) process.off(s, l as () => void);
    vi.useRealTimers();
  });

  it("a stop asked during start closes the daemon once started, and exits 0 once it is closed", async () => {
    const { log, lines } = capturedLog();
    const exit = vi.fn();
    const signals = handleSignals(log, exit);
    process.emit("SIGTERM");
    expect(lines.map((l) => l.msg)).toContain("stopping once started (asked during start)");
    const { d, finish } = daemon();
    signals.started(d);
    expect(d.close).toHaveBeenCalledTimes(1);
    expect(exit).not.toHaveBeenCalled();
    finish();
    await vi.waitFor(() => expect(exit).toHaveBeenCalledWith(0));
  });

  it("a stop asked during a start longer than the stop timeout waits for the start, then gets the whole timeout", () => {
    const { log } = capturedLog();
    const exit = vi.fn();
    const signals = handleSignals(log, exit);
    process.emit("SIGTERM");
    vi.advanceTimersByTime(3 * STOP_TIMEOUT_MS); // a hub waiting for its PostgreSQL at start
    expect(exit).not.toHaveBeenCalled();
    const { d } = daemon();
    signals.started(d);
    expect(d.close).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(STOP_TIMEOUT_MS - 1);
    expect(exit).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(exit).toHaveBeenCalledWith(1);
  });

  it("a SIGHUP during start is not lost (Node's default would end the process): it reloads once started", () => {
    const { log } = capturedLog();
    const signals = handleSignals(log, vi.fn());
    process.emit("SIGHUP");
    const reload = vi.fn();
    signals.started(daemon().d, reload);
    expect(reload).toHaveBeenCalledTimes(1);
    process.emit("SIGHUP");
    expect(reload).toHaveBeenCalledTimes(2);
  });

  it("once stopping, SIGHUP is ignored and a second stop signal does not close twice", () => {
    const { log } = capturedLog();
    const signals = handleSignals(log, vi.fn());
    const reload = vi.fn();
    const { d } = daemon();
    signals.started(d, reload);
    process.emit("SIGINT");
    process.emit("SIGHUP");
    process.emit("SIGTERM");
    expect(reload).not.toHaveBeenCalled();
    expect(d.close).toHaveBeenCalledTimes(1);
  });

  it("a stop that hangs is cut short after the timeout, exits 1 and says so", () => {
    const { log, lines } = capturedLog();
    const exit = vi.fn();
    handleSignals(log, exit).started(daemon().d);
    process.emit("SIGTERM");
    vi.advanceTimersByTime(STOP_TIMEOUT_MS - 1);
    expect(exit).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(exit).toHaveBeenCalledWith(1);
    expect(lines.some((l) => l.level === 50 && l.msg.startsWith("did not stop in time"))).toBe(true);
  });

  it("a close that fails exits 1 and logs the error", async () => {
    const { log, lines } = capturedLog();
    const exit = vi.fn();
    handleSignals(log, exit).started({ close: () => Promise.reject(new Error("journal busy")) });
    process.emit("SIGTERM");
    await vi.waitFor(() => expect(exit).toHaveBeenCalledWith(1));
    expect(lines.some((l) => l.msg === "error while stopping")).toBe(true);
  });
});
