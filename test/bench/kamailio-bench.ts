/**
 * `npm run bench -- --only kamailio`: the issue-3 benchmarks, locmesh against Kamailio's own
 * dmq_usrloc measured in the same run (3 nodes on 127.0.0.1, `-m 512`, `sync=1`,
 * `batch_msg_contacts=50`). Prints the table and writes bench-results/kamailio.json.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { summarize, type ScenarioReport } from "./report.js";
import { runKamailioConvergence } from "./scenarios/kamailio-convergence.js";
import { runKamailioRegistrar } from "./scenarios/kamailio-registrar.js";
import { runKamailioReload } from "./scenarios/kamailio-reload.js";
import { killAllNow } from "./kamailio-nodes.js";

export interface ReloadSetting {
  /** Through the evapi bulk channel (kamailio.bulkReload); else jsonrpcs datagrams. */
  bulk: boolean;
  dgramWorkers: number;
  /** The agent's kamailio.window (used by the jsonrpcs path). */
  window: number;
}

export const reloadSettingName = (s: ReloadSetting): string => (s.bulk ? "evapi bulk channel" : `jsonrpcs dgram_workers ${s.dgramWorkers} x window ${s.window}`);

export interface KamailioBenchSizes {
  shmMb: number;
  /** Registrar capacity: REGISTERs per sipp run, unanswered at most, runs per variant and rounds. */
  registrarCount: number;
  registrarLimit: number;
  registrarRepeat: number;
  registrarRounds: number;
  /**
   * Kamailio's CPU per REGISTER at a fixed rate, well below capacity (one sipp run per variant
   * and round, after the capacity runs): steadier than REGISTER/s at full load on a shared box.
   */
  registrarFixedRate: number;
  registrarFixedCount: number;
  convergenceCount: number;
  convergenceRate: number;
  convergenceTimeoutMs: number;
  reloadCount: number;
  /** Settings tried for the locmesh reload: the evapi bulk channel, or jsonrpcs with dgram_workers x kamailio.window. */
  reloadSettings: ReloadSetting[];
  /** Runs of convergence and reload (per setting); medians are reported. */
  repeat: number;
}

export const KAMAILIO_FULL: KamailioBenchSizes = {
  shmMb: 512,
  registrarCount: 30_000,
  registrarLimit: 200,
  registrarRepeat: 2,
  registrarRounds: 3,
  registrarFixedRate: 5000,
  registrarFixedCount: 20_000,
  convergenceCount: 20_000,
  convergenceRate: 2000,
  convergenceTimeoutMs: 15_000,
  reloadCount: 100_000,
  // jsonrpcs 4 x 128 was the best of 2x32, 4x64, 8x128 and 4x128 before the bulk channel.
  reloadSettings: [{ bulk: true, dgramWorkers: 4, window: 32 }, { bulk: false, dgramWorkers: 4, window: 128 }],
  repeat: 3,
};

export const KAMAILIO_QUICK: KamailioBenchSizes = {
  ...KAMAILIO_FULL,
  registrarCount: 10_000,
  registrarRepeat: 1,
  registrarRounds: 1,
  registrarFixedCount: 10_000,
  convergenceCount: 6000,
  reloadCount: 20_000,
  reloadSettings: [{ bulk: true, dgramWorkers: 4, window: 32 }],
  repeat: 1,
};

export interface KamailioBenchContext {
  sizes: KamailioBenchSizes;
  quick: boolean;
  log(line: string): void;
  /** A scratch folder for one part of the run (sipp scenarios, agents' journals). */
  dir(name: string): string;
  /** Flags for the agents' node (run.ts --profile, --node-flag). */
  nodeArgs: readonly string[];
}

const SCENARIOS: [string, (ctx: KamailioBenchContext) => Promise<ScenarioReport>][] = [
  ["registrar", runKamailioRegistrar],
  ["convergence", runKamailioConvergence],
  ["reload", runKamailioReload],
];

export async function runKamailioBench(o: { quick: boolean; keep: boolean; log(line: string): void; only?: string[]; nodeArgs?: readonly string[] }): Promise<{ text: string; figures: Record<string, unknown>[]; failed: boolean; scenarios: ScenarioReport[]; sizes: KamailioBenchSizes }> {
  const sizes = o.quick ? KAMAILIO_QUICK : KAMAILIO_FULL;
  const root = mkdtempSync(join(tmpdir(), "locmesh-kbench-"));
  const ctx: KamailioBenchContext = {
    sizes, quick: o.quick, log: o.log, nodeArgs: o.nodeArgs ?? [],
    dir(name) {
      const d = join(root, name);
      mkdirSync(d, { recursive: true });
      return d;
    },
  };
  const scenarios: ScenarioReport[] = [];
  // However the bench ends (Ctrl-C included: run.ts exits), no Kamailio or agent outlives it.
  process.once("exit", killAllNow);
  try {
    for (const [name, fn] of SCENARIOS) {
      if (o.only && !o.only.includes(name)) continue;
      o.log(`── kamailio ${name} ──`);
      try {
        scenarios.push(await fn(ctx));
      } catch (err) {
        o.log(`kamailio ${name} FAILED: ${(err as Error).stack ?? String(err)}`);
        scenarios.push({ name: `kamailio-${name}`, figures: [], details: {}, error: (err as Error).message });
      }
    }
  } finally {
    process.off("exit", killAllNow);
    if (o.keep) o.log(`kept ${root}`);
    else rmSync(root, { recursive: true, force: true });
  }
  return { ...summarize([{ synchronous: "full", scenarios }]), scenarios, sizes };
}
