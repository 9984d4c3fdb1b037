/**
 * Benchmark figures: how each is judged against its target, the printed table, and the
 * machine-readable bench-results/mesh.json.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, totalmem, type as osType } from "node:os";
import { dirname } from "node:path";

export interface Target {
  /** "max": must stay below `value`; "atMost": must not exceed it; "min": must reach at least `value`. */
  kind: "max" | "atMost" | "min";
  value: number;
}

export interface Reference {
  value: number;
  unit: string;
  source: string;
}

export interface Figure {
  id: string;
  metric: string;
  value: number;
  unit: string;
  /** Decimal places to print. */
  digits?: number;
  target: Target | null;
  reference?: Reference;
  /** Short note printed under the table (what was measured, caveats). */
  note?: string;
}

export interface JudgedFigure extends Figure {
  verdict: "MET" | "MISSED" | "info";
  /** value / reference.value, when there is a reference. */
  ratio: number | null;
}

export interface ScenarioReport {
  name: string;
  figures: Figure[];
  /** Raw numbers and phase timings, kept in the JSON for whoever digs deeper. */
  details: Record<string, unknown>;
  error?: string;
}

/** Everything one journal mode produced. */
export interface ModeReport {
  synchronous: "full" | "normal";
  scenarios: ScenarioReport[];
}

/**
 * The printed table with its notes and failures, and the figures for the results file. With more
 * than one journal mode, each metric names its mode.
 */
export function summarize(modes: readonly ModeReport[]): { text: string; figures: Record<string, unknown>[]; failed: boolean } {
  const judged = modes.flatMap((m) =>
    m.scenarios.flatMap((s) =>
      s.figures.map((f) => ({ ...judge(f), synchronous: m.synchronous, metric: modes.length > 1 ? `${f.metric} [sync=${m.synchronous}]` : f.metric })),
    ),
  );
  const failures = modes.flatMap((m) => m.scenarios.filter((s) => s.error).map((s) => `${s.name} [sync=${m.synchronous}]: ${s.error}`));
  const lines = [renderTable(judged), ""];
  for (const f of judged) if (f.note) lines.push(`- ${f.metric.trim()}: ${f.note}`);
  for (const f of failures) lines.push(`- FAILED ${f}`);
  const figures = judged.map((f) => ({
    id: f.id, synchronous: f.synchronous, metric: f.metric.trim(), value: f.value, unit: f.unit, target: f.target,
    reference: f.reference ?? null, ratio: f.ratio, verdict: f.verdict, note: f.note ?? null,
  }));
  return { text: `${lines.join("\n")}\n`, figures, failed: failures.length > 0 };
}

export function judge(f: Figure): JudgedFigure {
  const ratio = f.reference ? f.value / f.reference.value : null;
  if (!f.target || !Number.isFinite(f.value)) return { ...f, verdict: f.target ? "MISSED" : "info", ratio };
  const { kind, value } = f.target;
  const met = kind === "max" ? f.value < value : kind === "atMost" ? f.value <= value : f.value >= value;
  return { ...f, verdict: met ? "MET" : "MISSED", ratio };
}

const num = (v: number, digits = 0) =>
  Number.isFinite(v) ? v.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits }) : "n/a";

function targetText(f: Figure): string {
  if (!f.target) return "—";
  const op = { max: "<", atMost: "≤", min: "≥" }[f.target.kind];
  return `${op} ${num(f.target.value, Number.isInteger(f.target.value) ? 0 : (f.digits ?? 2))} ${f.unit}`;
}

function verdictText(f: JudgedFigure): string {
  const parts: string[] = [];
  if (f.ratio !== null) parts.push(`${num(f.ratio, 2)}× ref`);
  if (f.verdict !== "info") parts.push(f.verdict);
  return parts.length > 0 ? parts.join(", ") : "—";
}

/** A Markdown table: | metric | locmesh | target | reference | ratio/verdict |. */
export function renderTable(figures: readonly JudgedFigure[]): string {
  const rows = figures.map((f) => [
    f.metric,
    `${num(f.value, f.digits ?? 0)} ${f.unit}`,
    targetText(f),
    f.reference ? `${num(f.reference.value, f.reference.unit === f.unit ? (f.digits ?? 0) : 0)} ${f.reference.unit} (${f.reference.source})` : "—",
    verdictText(f),
  ]);
  const head = ["metric", "locmesh", "target", "reference", "ratio/verdict"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  return [line(head), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(line)].join("\n");
}

export function machineInfo() {
  return {
    cpu: cpus()[0]?.model ?? "unknown",
    nproc: cpus().length,
    node: process.version,
    os: `${osType()} ${release()}`,
    memoryMiB: Math.round(totalmem() / 2 ** 20),
    /** 1, 5 and 15 minute load averages when the bench started: other work on the box skews every figure. */
    loadAverage: loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

/** Fraction of all CPUs busy over `ms`, from /proc/stat: what else is running before the bench starts. */
export async function cpuBusyFraction(ms: number): Promise<number> {
  const sample = () => {
    const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3]! + f[4]!; // idle + iowait
    return { idle, total: f.reduce((a, b) => a + b, 0) };
  };
  const a = sample();
  await new Promise((r) => setTimeout(r, ms));
  const b = sample();
  return b.total === a.total ? 0 : 1 - (b.idle - a.idle) / (b.total - a.total);
}

export function writeResults(path: string, body: Record<string, unknown>): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(body, null, 2)}\n`);
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}
