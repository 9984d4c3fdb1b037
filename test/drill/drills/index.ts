/** Every drill, in the order `npm run drill` runs them. */
import type { Drill } from "../drill.js";
import { HOSTILE_DRILLS } from "./hostile.js";
import { KILL_DRILLS } from "./kill.js";

export const DRILLS: readonly Drill[] = [...KILL_DRILLS, ...HOSTILE_DRILLS];
