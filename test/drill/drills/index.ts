/** Every drill, in the order `npm run drill` runs them. */
import type { Drill } from "../drill.js";
import { FREEZE_DRILLS } from "./freeze.js";
import { KILL_DRILLS } from "./kill.js";

export const DRILLS: readonly Drill[] = [...KILL_DRILLS, ...FREEZE_DRILLS];
