/**
 * Hostile input: a seeded fuzzer against the peer port, the local API and the registrar-event
 * input (hostile/fuzz-drill.ts), and SIP values full of quotes, NULs, unicode and SQL through the
 * FIFO and both Kamailio databases (hostile/sip-values-drill.ts).
 */
import type { Drill } from "../drill.js";
import { runFuzzDrill } from "../hostile/fuzz-drill.js";
import { runSipValuesDrill } from "../hostile/sip-values-drill.js";

export const HOSTILE_DRILLS: readonly Drill[] = [
  {
    name: "fuzz",
    title: "seeded fuzzer: 100,000 malformed messages (10,000 with --short) at the peer port, the API and the registrar events; wrong and replayed credentials",
    run: runFuzzDrill,
  },
  {
    name: "sip-values",
    title: "quotes, SQL, unicode and %00 in SIP values survive the FIFO, SQLite and PostgreSQL byte for byte; NUL is refused",
    run: runSipValuesDrill,
  },
];
