/** Every drill, in the order `npm run drill` runs them. */
import type { Drill } from "../drill.js";
import { DISK_FULL_DRILLS } from "./disk-full.js";
import { KILL_DRILLS } from "./kill.js";
import { WRITER_DRILLS } from "./writer-faults.js";

export const DRILLS: readonly Drill[] = [...KILL_DRILLS, ...WRITER_DRILLS, ...DISK_FULL_DRILLS];
