/**
 * The drill report: each drill's steps and figures as it finishes, a summary table at the end,
 * and the same figures in drill-results/ (JSON, and the Markdown table the README quotes).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { passed, type Drill, type DrillResult } from "./drill.js";

export interface Outcome {
  drill: Drill;
  result: DrillResult | null;
  /** The drill could not run to its check (it threw). */
  error: string | null;
  seconds: number;
}

export const outcomeOk = (o: Outcome): boolean => o.result !== null && passed(o.result);

/** Lines describing one finished drill. */
export function describe(o: Outcome): string[] {
  const lines = [`── ${o.drill.name}: ${outcomeOk(o) ? "PASS" : "FAIL"} (${o.seconds.toFixed(0)} s)`];
  if (o.error !== null) return [...lines, `   error: ${o.error}`];
  const r = o.result!;
  if (r.traffic) {
    const t = r.traffic;
    lines.push(`   REGISTERs: ${t.registers.sent} sent, ${t.registers.acked} acknowledged, ${t.registers.doubt} unanswered`);
    lines.push(`   alias calls: ${t.aliases.calls} made, ${t.aliases.acked} acknowledged, ${t.aliases.failed} refused, ${t.aliases.doubt} unanswered`);
  }
  if (r.atRisk > 0) lines.push(`   acknowledged in the instant of a Kamailio kill (db_mode 0), counted as unanswered: ${r.atRisk}`);
  for (const v of r.verdict.views) {
    lines.push(`   ${v.view.padEnd(12)} missing ${v.missing}, extra ${v.extra}`);
    for (const e of v.examples) lines.push(`      ${e}`);
  }
  lines.push(`   unanswered writes the nodes disagree on: ${r.verdict.disagree}`);
  for (const e of r.verdict.examples) lines.push(`      ${e}`);
  for (const [k, v] of Object.entries(r.zeroes ?? {})) lines.push(`   ${k}: ${v}`);
  for (const [k, v] of Object.entries(r.info ?? {})) lines.push(`   ${k}: ${v}`);
  lines.push(`   converged ${r.convergeSec.toFixed(1)} s after the traffic ended`);
  return lines;
}

const worst = (r: DrillResult, key: "missing" | "extra"): number => r.verdict.views.reduce((s, v) => s + v[key], 0);

/** The summary table (Markdown, so the README can quote it as is). */
export function table(outcomes: readonly Outcome[]): string {
  const rows = [
    "| drill | what it does | writes acknowledged | missing | extra | disagree | other zero figures | converged | result |",
    "|---|---|---|---|---|---|---|---|---|",
  ];
  for (const o of outcomes) {
    const r = o.result;
    if (!r) {
      rows.push(`| ${o.drill.name} | ${o.drill.title} | – | – | – | – | – | – | ERROR: ${(o.error ?? "").replace(/\|/g, "/").slice(0, 120)} |`);
      continue;
    }
    const acked = r.traffic ? r.traffic.registers.acked + r.traffic.aliases.acked : 0;
    const zeroes = Object.entries(r.zeroes ?? {}).map(([k, v]) => `${k} ${v}`).join(", ") || "–";
    rows.push(
      `| ${o.drill.name} | ${o.drill.title} | ${acked} | ${worst(r, "missing")} | ${worst(r, "extra")} | ${r.verdict.disagree} | ${zeroes} | ${r.convergeSec.toFixed(1)} s | ${outcomeOk(o) ? "pass" : "FAIL"} |`,
    );
  }
  return rows.join("\n");
}

export function writeResults(dir: string, outcomes: readonly Outcome[], meta: Record<string, unknown>): string {
  mkdirSync(dir, { recursive: true });
  const name = meta["short"] ? "short" : "full";
  writeFileSync(
    join(dir, `${name}.json`),
    JSON.stringify(
      {
        ...meta,
        drills: outcomes.map((o) => ({ name: o.drill.name, title: o.drill.title, ok: outcomeOk(o), seconds: o.seconds, error: o.error, result: o.result })),
      },
      null,
      2,
    ),
  );
  writeFileSync(join(dir, `${name}.md`), table(outcomes) + "\n");
  return join(dir, `${name}.md`);
}
