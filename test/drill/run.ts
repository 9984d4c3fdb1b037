/**
 * `npm run drill`: the failure drills' composition root (the only place that reads argv, installs
 * signal handlers or exits). Runs each drill against real Kamailio, agents, sipp and, where a
 * drill needs it, PostgreSQL on 127.0.0.1, prints what it did and its figures, writes
 * drill-results/{full,short}.{json,md}, and exits 1 unless every figure is zero.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { packageRoot } from "../../agent/ops/paths.js";
import { DRILLS } from "./drills/index.js";
import { describe, outcomeOk, table, writeResults, type Outcome } from "./report.js";

const HELP = `Usage: npm run drill -- [options]

Failure drills: each starts 3 real Kamailio 5.6 nodes with their locmesh agents on 127.0.0.1,
drives REGISTERs (sipp) and alias changes (JSON-RPC) through them, injects a fault, heals it, and
compares every node's full dump (journal and Kamailio) with what was acknowledged.
The only passing figure is zero; the exit status is 1 otherwise.

Options:
  --short          CI's version: less traffic and shorter faults, the same checks
  --only <names>   comma-separated drill names (see --list)
  --list           list the drills and exit
  --keep           keep the drills' directories (logs, journals) after a pass
  -h, --help       this text

Results: drill-results/full.{json,md} (or short.*), the table the README quotes.`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      short: { type: "boolean", default: false },
      only: { type: "string" },
      list: { type: "boolean", default: false },
      keep: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (values.list) {
    for (const d of DRILLS) console.log(`${d.name.padEnd(24)} ${d.title}`);
    return 0;
  }
  const wanted = values.only?.split(",").map((s) => s.trim()).filter(Boolean);
  const unknown = wanted?.filter((w) => !DRILLS.some((d) => d.name === w)) ?? [];
  if (unknown.length > 0) {
    console.error(`unknown drill(s): ${unknown.join(", ")}; --list shows them`);
    return 2;
  }
  const drills = wanted ? DRILLS.filter((d) => wanted.includes(d.name)) : DRILLS;
  const root = mkdtempSync(join(tmpdir(), "locmesh-drill-"));
  const outcomes: Outcome[] = [];
  const started = Date.now();
  console.log(`locmesh drills (${values.short ? "short" : "full"}): ${drills.map((d) => d.name).join(", ")}\nworking in ${root}`);
  for (const drill of drills) {
    const dir = join(root, drill.name);
    mkdirSync(dir, { recursive: true });
    console.log(`\n▶ ${drill.name}: ${drill.title}`);
    const t0 = Date.now();
    let outcome: Outcome;
    try {
      const result = await drill.run({ dir, short: values.short, log: (line) => console.log(`   · ${line}`) });
      outcome = { drill, result, error: null, seconds: (Date.now() - t0) / 1000 };
    } catch (err) {
      outcome = { drill, result: null, error: (err as Error).stack ?? String(err), seconds: (Date.now() - t0) / 1000 };
    }
    outcomes.push(outcome);
    for (const line of describe(outcome)) console.log(line);
    if (outcomeOk(outcome) && !values.keep) rmSync(dir, { recursive: true, force: true });
  }
  const failed = outcomes.filter((o) => !outcomeOk(o));
  console.log(`\n${table(outcomes)}\n`);
  const md = writeResults(join(packageRoot(), "drill-results"), outcomes, {
    short: values.short,
    finishedAt: new Date().toISOString(),
    minutes: Number(((Date.now() - started) / 60000).toFixed(1)),
  });
  console.log(`${outcomes.length - failed.length}/${outcomes.length} drills passed in ${((Date.now() - started) / 60000).toFixed(1)} min; table in ${md}`);
  if (failed.length > 0) console.log(`failed: ${failed.map((o) => o.drill.name).join(", ")}; their logs are under ${root}`);
  else if (!values.keep) rmSync(root, { recursive: true, force: true });
  return failed.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
