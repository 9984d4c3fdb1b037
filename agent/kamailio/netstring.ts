/**
 * Netstrings (https://cr.yp.to/proto/netstrings.txt): `<decimal length>:<bytes>,`. Kamailio's evapi
 * frames every event this way with `netstring_format` 1 (kamailio-5.6.md §6), e.g.
 * `443:{"event":"register",...},`.
 *
 * The decoder is incremental: TCP may split a frame at any byte, or put many frames in one chunk.
 * It keeps no more than one frame's bytes and refuses a frame longer than `maxFrameBytes` as soon
 * as its length digits say so, so a garbled stream cannot make it buffer without bound.
 */

export class NetstringError extends Error {
  override readonly name = "NetstringError";
}

export interface NetstringDecoder {
  /** Feeds bytes; returns the payloads completed by them, in order. Throws NetstringError; after that the decoder is unusable. */
  push(chunk: Uint8Array): Buffer[];
  /** Bytes held for an incomplete frame: length digits, or body bytes read so far. */
  pending(): number;
}

const COLON = 0x3a;
const COMMA = 0x2c;
const ZERO = 0x30;
const NINE = 0x39;

/**
 * `body` as netstring text, for a writer that joins many frames before encoding them once; the
 * length prefix counts UTF-8 bytes (`bodyBytes`, when the caller knows them), and `bytes` is the
 * whole frame's length in bytes.
 */
export function netstringText(body: string, bodyBytes = Buffer.byteLength(body, "utf8")): { frame: string; bytes: number } {
  const frame = `${bodyBytes}:${body},`;
  return { frame, bytes: bodyBytes + frame.length - body.length };
}

export function encodeNetstring(payload: string | Uint8Array): Buffer {
  const body = typeof payload === "string" ? Buffer.from(payload, "utf8") : Buffer.from(payload);
  return Buffer.concat([Buffer.from(`${body.length}:`, "ascii"), body, Buffer.from(",", "ascii")]);
}

export function createNetstringDecoder(opts: { maxFrameBytes: number }): NetstringDecoder {
  const maxDigits = String(opts.maxFrameBytes).length;
  // State: reading length digits (body === null), reading the body, or expecting the comma.
  let digits = "";
  let body: Buffer | null = null;
  let filled = 0;
  let failed: NetstringError | null = null;

  function fail(message: string): never {
    failed = new NetstringError(message);
    throw failed;
  }

  function startBody(): void {
    if (digits === "") fail("netstring has no length before ':'");
    if (digits.length > 1 && digits.startsWith("0")) fail(`netstring length ${digits} has a leading zero`);
    const len = Number(digits);
    if (len > opts.maxFrameBytes) fail(`netstring of ${len} bytes is over the ${opts.maxFrameBytes}-byte limit`);
    body = Buffer.allocUnsafe(len);
    filled = 0;
    digits = "";
  }

  function push(chunk: Uint8Array): Buffer[] {
    if (failed) throw failed;
    const out: Buffer[] = [];
    let i = 0;
    while (i < chunk.length) {
      if (body === null) {
        const b = chunk[i++] as number;
        if (b === COLON) startBody();
        else if (b >= ZERO && b <= NINE) {
          digits += String.fromCharCode(b);
          if (digits.length > maxDigits) fail(`netstring length ${digits}... is over the ${opts.maxFrameBytes}-byte limit`);
        } else fail(`netstring length has a non-digit byte 0x${b.toString(16).padStart(2, "0")}`);
      } else if (filled < body.length) {
        const n = Math.min(body.length - filled, chunk.length - i);
        body.set(chunk.subarray(i, i + n), filled);
        filled += n;
        i += n;
      } else {
        const b = chunk[i++] as number;
        if (b !== COMMA) fail(`netstring of ${body.length} bytes is not followed by ',' (got 0x${b.toString(16).padStart(2, "0")})`);
        out.push(body);
        body = null;
      }
    }
    return out;
  }

  return {
    push,
    pending: () => (body === null ? digits.length : filled),
  };
}
