import { describe, expect, it } from "vitest";
import { cellText, formatPairs, formatTable } from "../../agent/cli/table.js";

describe("formatTable", () => {
  it("aligns columns under the header and trims trailing spaces", () => {
    const out = formatTable(
      ["ID", "CONNECTED", "LAST ERROR"],
      [
        ["n2", true, null],
        ["node-three", false, "ECONNREFUSED"],
      ],
    );
    expect(out.split("\n")).toEqual([
      "ID          CONNECTED  LAST ERROR",
      "n2          yes        -",
      "node-three  no         ECONNREFUSED",
    ]);
  });

  it("right-aligns columns on request", () => {
    const out = formatTable(["NAME", "COUNT"], [["a", 5], ["b", 1200]], { align: ["left", "right"] });
    expect(out.split("\n")).toEqual(["NAME  COUNT", "a         5", "b      1200"]);
  });

  it("prints only the header when there are no rows", () => {
    expect(formatTable(["A", "B"], [])).toBe("A  B");
  });

  it("fills missing cells with a dash", () => {
    expect(formatTable(["A", "B"], [["x"]]).split("\n")[1]).toBe("x  -");
  });

  it("makes control characters visible so cells cannot drive the terminal", () => {
    const out = formatTable(["UA"], [["evil\u001b[2J\nphone\u009b"]]);
    expect(out).toBe("UA\nevil\\x1b[2J\\x0aphone\\x9b");
    expect(out.split("\n")).toHaveLength(2);
  });
});

describe("cellText and formatPairs", () => {
  it("renders empty values as a dash and booleans as yes/no", () => {
    expect([cellText(null), cellText(undefined), cellText(""), cellText(true), cellText(0)]).toEqual(["-", "-", "-", "yes", "0"]);
  });

  it("lines up values", () => {
    expect(formatPairs([["node", "n1"], ["pending", 3]])).toBe("node     n1\npending  3");
  });
});
