/** WebSocket close reasons: what a closed session leaves as the link's last error (dialer.ts). */

/** RFC 6455 section 5.5: a control frame's payload is at most 125 bytes, 2 of them the close code. */
const MAX_REASON_BYTES = 123;
const ELLIPSIS = "…";

/** The text as a close reason: cut to fit, at a character boundary (a split character makes the frame invalid). */
export function closeReason(text: string): string {
  const bytes = Buffer.from(text);
  if (bytes.length <= MAX_REASON_BYTES) return text;
  let end = MAX_REASON_BYTES - Buffer.byteLength(ELLIPSIS);
  // bytes[end] is the first byte left out: while it continues a character, that character goes too.
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return `${bytes.subarray(0, end).toString()}${ELLIPSIS}`;
}
