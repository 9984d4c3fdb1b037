import { afterEach, describe, expect, it } from "vitest";
import { clearUnsaved, markUnsaved, unsavedQuestion } from "../../web/src/lib/unsaved.js";

afterEach(() => clearUnsaved());

describe("unsaved edits (web UI sign-out and tab close)", () => {
  it("asks only while an edit differs from what it started from, naming at most three", () => {
    expect(unsavedQuestion("Sign out")).toBe("");
    markUnsaved("a@x", true);
    expect(unsavedQuestion("Sign out")).toBe("The edit of a@x is not saved. Sign out and drop it?");
    for (const a of ["b@x", "c@x", "d@x", "e@x"]) markUnsaved(a, true);
    expect(unsavedQuestion("Leave")).toBe("The edit of a@x, b@x, c@x and 2 more is not saved. Leave and drop it?");
    for (const a of ["a@x", "b@x", "c@x", "d@x", "e@x"]) markUnsaved(a, false);
    expect(unsavedQuestion("Sign out")).toBe("");
  });
});
