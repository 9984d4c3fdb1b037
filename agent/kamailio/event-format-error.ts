/** The only error the evapi event parsers (register-event.ts, event-format2.ts) let out. */
export class EventFormatError extends Error {
  override readonly name = "EventFormatError";
}
