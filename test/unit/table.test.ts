import { describe, expect, it } from "vitest";
import { cellText, displayWidth, formatPairs, formatTable } from "../../agent/cli/table.js";

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
  it("makes bidirectional embeddings, overrides and isolates visible, so a value cannot show reversed", () => {
    // An alias target with U+202E showed as "sip:bob@example.com" spelled backwards, and the rest of the line too.
    expect(cellText("sip:\u202emoc.elpmaxe@bob")).toBe("sip:\\u202emoc.elpmaxe@bob");
    const bidi = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"];
    expect(cellText(`a${bidi.join("")}b`)).toBe("a\\u202a\\u202b\\u202c\\u202d\\u202e\\u2066\\u2067\\u2068\\u2069b");
    // Other non-ASCII text is left alone (the marks U+200E/U+200F only place neutral characters).
    expect(cellText("José \u05e9\u05dc\u05d5\u05dd \u200f")).toBe("José \u05e9\u05dc\u05d5\u05dd \u200f");
    expect(formatTable(["ALIAS", "TARGET"], [["bob", "sip:\u202eevil"]]).split("\n")[1]).toBe("bob    sip:\\u202eevil");
  });

  it("renders empty values as a dash and booleans as yes/no", () => {
    expect([cellText(null), cellText(undefined), cellText(""), cellText(true), cellText(0)]).toEqual(["-", "-", "-", "yes", "0"]);
  });

  it("lines up values", () => {
    expect(formatPairs([["node", "n1"], ["pending", 3]])).toBe("node     n1\npending  3");
  });
});

describe("formatTable on a big table", () => {
  // `location ls --all` / `alias ls --all` of a big journal: the widths were Math.max(...column),
  // one argument per row, and above ~130,000 rows "Maximum call stack size exceeded" (exit 1, no output).
  it("formats 200,000 rows", () => {
    const rows = Array.from({ length: 200_000 }, (_, i) => [`sip:user${i}@example.com`, i]);
    const lines = formatTable(["ALIAS", "N"], rows, { align: ["left", "right"] }).split("\n");
    expect(lines).toHaveLength(200_001);
    // Widths from the whole column: the longest alias (26) and the largest number (6).
    expect(lines[0]).toBe(`${"ALIAS".padEnd(26)}  ${"N".padStart(6)}`);
    expect(lines[1]).toBe(`${"sip:user0@example.com".padEnd(26)}  ${"0".padStart(6)}`);
    expect(lines[200_000]).toBe("sip:user199999@example.com  199999");
  });
});

describe("formatTable with wide and combining characters", () => {
  // Columns were padded by UTF-16 code units: a CJK display name or an emoji in a User-Agent takes
  // two terminal columns a character, a combining accent none, and the columns after it slid.
  it("pads by terminal columns", () => {
    const out = formatTable(
      ["UA", "N"],
      [
        ["電話機", 1], // 3 wide characters: 6 columns
        ["📞 phone", 2], // an emoji (2 columns, 2 code units) and 6 narrow
        ["Jose\u0301", 3], // "José" with a combining acute accent: 4 columns, 5 code units
        ["abcdefgh", 4],
      ],
    );
    expect(out.split("\n")).toEqual(["UA        N", "電話機    1", "📞 phone  2", "Jose\u0301      3", "abcdefgh  4"]);
  });

  it("right-aligns by terminal columns", () => {
    const out = formatTable(["NAME", "WHO"], [["a", "全角"], ["b", "xyz"]], { align: ["left", "right"] });
    expect(out.split("\n")).toEqual(["NAME   WHO", "a     全角", "b      xyz"]);
  });

  it("measures text the way a terminal shows it", () => {
    expect([displayWidth("sip:a@b"), displayWidth("日本"), displayWidth("e\u0301"), displayWidth("👍🏽"), displayWidth("")]).toEqual([7, 4, 1, 2, 0]);
  });
});
