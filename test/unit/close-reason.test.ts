import { describe, expect, it } from "vitest";
import { closeReason } from "../../agent/mesh/close-reason.js";

describe("closeReason", () => {
  it("keeps a reason that fits, and cuts a long one to 123 bytes without splitting a character", () => {
    expect(closeReason("refused by hub1: unauthorized: wrong key")).toBe("refused by hub1: unauthorized: wrong key");
    const cut = closeReason(`refused by ${"é".repeat(100)}`);
    expect(Buffer.byteLength(cut)).toBeLessThanOrEqual(123);
    expect(cut).toMatch(/^refused by é+…$/);
    expect(Buffer.byteLength(closeReason("x".repeat(500)))).toBe(123);
  });
});
