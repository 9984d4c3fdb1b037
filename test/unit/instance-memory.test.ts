import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createInstanceMemory } from "../../agent/kamailio/instance-memory.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const fileIn = () => {
  const d = mkdtempSync(join(tmpdir(), "locmesh-instance-"));
  dirs.push(d);
  return join(d, "kamailio-instance.json");
};
const A = { mainPid: 100, upSince: "Sun Nov 22 10:00:00 2026", uptimeSec: 50 };
const B = { mainPid: 200, upSince: "Sun Nov 22 11:00:00 2026", uptimeSec: 3 };

describe("Kamailio instance memory", () => {
  it("keeps a new instance as needing a reload across agent restarts until a reload into it finished", () => {
    const file = fileIn();
    const first = createInstanceMemory(file);
    expect(first.observe(A)).toBe("first contact");
    first.whole();
    expect(createInstanceMemory(file).observe(A)).toBe("whole");

    // Kamailio restarts; the agent sees it, starts the reload, and stops before it ends.
    const during = createInstanceMemory(file);
    expect(during.observe(B)).toBe("restarted");
    expect(during.observe(B)).toBe("restarted");
    // The agent comes back: B still needs its reload.
    const after = createInstanceMemory(file);
    expect(after.observe(B)).toBe("restarted");
    after.whole();
    expect(after.observe(B)).toBe("whole");
    expect(createInstanceMemory(file).observe(B)).toBe("whole");
    // Uptime differs between probes of one instance; only pid and start time tell instances apart.
    expect(createInstanceMemory(file).observe({ ...B, uptimeSec: 90 })).toBe("whole");
  });

  it("reads a missing or unreadable file as first contact", () => {
    const file = fileIn();
    expect(createInstanceMemory(file).observe(A)).toBe("first contact");
    expect(createInstanceMemory(join(file, "not-a-dir", "x.json")).observe(A)).toBe("first contact");
  });
});
