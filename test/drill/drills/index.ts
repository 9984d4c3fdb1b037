/** Every drill, in the order `npm run drill` runs them. */
import type { Drill } from "../drill.js";
import { DISK_FULL_DRILLS } from "./disk-full.js";
import { FREEZE_DRILLS } from "./freeze.js";
import { HOSTILE_DRILLS } from "./hostile.js";
import { HUB_DRILLS } from "./hub.js";
import { KILL_DRILLS } from "./kill.js";
import { STORM_DRILLS } from "./storm.js";
import { WRITER_DRILLS } from "./writer-faults.js";

export const DRILLS: readonly Drill[] = [
  ...KILL_DRILLS,
  ...FREEZE_DRILLS,
  ...WRITER_DRILLS,
  ...DISK_FULL_DRILLS,
  ...STORM_DRILLS,
  ...HUB_DRILLS,
  ...HOSTILE_DRILLS,
];
