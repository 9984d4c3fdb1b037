import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createNetstringDecoder, encodeNetstring, NetstringError } from "../../agent/kamailio/netstring.js";

const decodeAll = (chunks: Uint8Array[], maxFrameBytes = 1 << 20): string[] => {
  const d = createNetstringDecoder({ maxFrameBytes });
  return chunks.flatMap((c) => d.push(c)).map((b) => b.toString("utf8"));
};

/** Splits `buf` at the given cut points (any byte, including inside the length and the comma). */
const splitAt = (buf: Buffer, cuts: number[]): Buffer[] => {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of [...points, buf.length]) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  return out;
};

describe("netstring decoder", () => {
  it("decodes evapi's framing, several frames per chunk", () => {
    expect(decodeAll([Buffer.from('5:hello,0:,10:{"a":"\u00e9"},')])).toEqual(["hello", "", '{"a":"\u00e9"}']);
  });

  it("reassembles any sequence of payloads split at arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: "binary", maxLength: 300 }), { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 40 }), (payloads, cuts) => {
        const stream = Buffer.concat(payloads.map((p) => encodeNetstring(p)));
        expect(decodeAll(splitAt(stream, cuts))).toEqual(payloads);
      }),
    );
  });

  it("byte-at-a-time delivery works and pending() tracks the partial frame", () => {
    const d = createNetstringDecoder({ maxFrameBytes: 100 });
    const out: Buffer[] = [];
    for (const b of encodeNetstring("abc")) out.push(...d.push(Uint8Array.of(b)));
    expect(out.map(String)).toEqual(["abc"]);
    d.push(Buffer.from("10:abcd"));
    expect(d.pending()).toBe(4);
  });

  it.each([
    ["x:abc,", /non-digit/],
    [":abc,", /no length/],
    ["05:hello,", /leading zero/],
    ["3:abcd", /not followed by ','/],
    ["-1:a,", /non-digit/],
    ["101:", /over the 100-byte limit/],
    ["1000000000000", /over the 100-byte limit/],
  ])("rejects %j", (input, message) => {
    const d = createNetstringDecoder({ maxFrameBytes: 100 });
    expect(() => d.push(Buffer.from(input))).toThrow(message);
  });

  it("refuses an oversized frame from its length digits, before buffering it", () => {
    const d = createNetstringDecoder({ maxFrameBytes: 1000 });
    expect(() => d.push(Buffer.from("99999"))).toThrow(NetstringError);
    expect(() => d.push(Buffer.from("1:a,"))).toThrow(NetstringError); // unusable after an error
  });

  it("any garbage either decodes or throws NetstringError, never anything else", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const d = createNetstringDecoder({ maxFrameBytes: 64 });
        try {
          d.push(bytes);
        } catch (err) {
          expect(err).toBeInstanceOf(NetstringError);
        }
      }),
    );
  });
});
