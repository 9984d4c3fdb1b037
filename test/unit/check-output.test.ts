/**
 * `locmesh check`'s report on the terminal (agent/cli/check-output.ts) and its exit code
 * (agent/check/check-result.ts): aligned lines, details wrapped under their column, what came off
 * the network made harmless, and a last line that counts what failed.
 */
import { describe, expect, it } from "vitest";
import { checkExitCode, errorText, sentences, summaryLine, type CheckReport } from "../../agent/check/check-result.js";
import { renderReport } from "../../agent/cli/check-output.js";

const report = (checks: CheckReport["checks"], running = false): CheckReport => ({ daemon: "agent", nodeId: "n1", config: "/etc/locmesh/agent.yaml", running, checks });

describe("locmesh check's report", () => {
  it("aligns the subjects, wraps each detail under its column, and counts", () => {
    const text = renderReport(report([
      { subject: "config", state: "ok", detail: "valid" },
      { subject: "kamailio fifo", state: "fail", detail: "Kamailio FIFO /run/kamailio/kamailio_rpc.fifo does not exist (Kamailio is not running, or fifo_name points elsewhere)" },
      { subject: "kamailio evapi", state: "skip", detail: "not connected to" },
      { subject: "peer n2", state: "warn", detail: "slow" },
    ]), 60);
    expect(text).toBe(
      [
        "locmesh check: node n1, config /etc/locmesh/agent.yaml, its agent is not running",
        "  ok    config          valid",
        "  FAIL  kamailio fifo   Kamailio FIFO",
        "                        /run/kamailio/kamailio_rpc.fifo does",
        "                        not exist (Kamailio is not running,",
        "                        or fifo_name points elsewhere)",
        "  skip  kamailio evapi  not connected to",
        "  WARN  peer n2         slow",
        "1 of 3 checks failed, 1 with a warning: each FAIL line says what to do.",
        "",
      ].join("\n"),
    );
  });

  it("writes out control characters and bidi overrides of what a peer sent, and keeps wide characters aligned", () => {
    const text = renderReport(report([
      { subject: "peer 東京", state: "fail", detail: "ws://10.0.0.2:7100 answers as node \u001b[2Jevil\u202e, and mesh.peers names it 東京" },
      { subject: "peer n2", state: "ok", detail: "answers" },
    ], true));
    expect(text).toContain("answers as node \\x1b[2Jevil\\u202e,");
    expect(text.includes("\u001b") || text.includes("\u202e")).toBe(false);
    const lines = text.split("\n");
    // "peer 東京" takes 9 columns in 7 characters, "peer n2" 7 in 7 and two spaces of padding: both
    // details start in the same column, two characters further on the ok line.
    const okLine = lines.find((l) => l.startsWith("  ok"))!;
    expect(lines[1]!.indexOf("ws://")).toBe(okLine.indexOf("answers") - 2);
    expect(lines[0]).toBe("locmesh check: node n1, config /etc/locmesh/agent.yaml, its agent is running");
  });

  it("exits 0 with warnings only, 1 with a failure; counts in the singular too", () => {
    const ok = { subject: "config", state: "ok", detail: "valid" } as const;
    const warn = { subject: "a", state: "warn", detail: "w" } as const;
    const fail = { subject: "b", state: "fail", detail: "f" } as const;
    expect(checkExitCode([ok, warn])).toBe(0);
    expect(checkExitCode([ok, fail])).toBe(1);
    expect(summaryLine([ok])).toBe("1 check passed.");
    expect(summaryLine([ok, warn, warn, { subject: "c", state: "skip", detail: "s" }])).toBe("3 checks passed, 2 with warnings.");
  });

  it("joins an error and what to do into sentences, and names what fetch failed on", () => {
    expect(sentences("is Kamailio running?", "Set it")).toBe("is Kamailio running? Set it");
    expect(sentences("connect ECONNREFUSED", "Set it")).toBe("connect ECONNREFUSED. Set it");
    expect(errorText(new TypeError("fetch failed", { cause: Object.assign(new Error("x"), { code: "ECONNREFUSED" }) }))).toBe("ECONNREFUSED");
    expect(errorText(new DOMException("The operation was aborted due to timeout", "TimeoutError"))).toBe("no answer in time");
  });
});
