/** Every drill, in the order `npm run drill` runs them. */
import type { Drill } from "../drill.js";
import { KILL_DRILLS } from "./kill.js";

export const DRILLS: readonly Drill[] = [...KILL_DRILLS];
