/**
 * `locmesh check`'s report on the terminal: one aligned line per check, its detail wrapped under
 * its own column, and a last line that counts. Details can hold what came off the network (the id
 * a peer's challenge gave, an error text), so they go through cellText like every table cell.
 */
import { summaryLine, type CheckReport, type CheckState } from "../check/check-result.js";
import { cellText, displayWidth } from "./table.js";

const LABEL: Record<CheckState, string> = { ok: "ok", warn: "WARN", fail: "FAIL", skip: "skip" };

export function renderReport(r: CheckReport, width = 100): string {
  const subjects = r.checks.map((c) => cellText(c.subject));
  const subjectWidth = Math.max(8, ...subjects.map(displayWidth));
  const indent = 2 + 4 + 2 + subjectWidth + 2;
  const lines = [`locmesh check: node ${r.nodeId}${r.config ? `, config ${cellText(r.config)}` : ""}, ${r.running === null ? `whether its ${r.daemon} is running could not be told` : `its ${r.daemon} is ${r.running ? "running" : "not running"}`}`];
  r.checks.forEach((c, i) => {
    const subject = subjects[i]!;
    const wrapped = wrap(cellText(c.detail), Math.max(30, width - indent));
    lines.push(`  ${LABEL[c.state].padEnd(4)}  ${subject}${" ".repeat(subjectWidth - displayWidth(subject))}  ${wrapped[0] ?? ""}`.trimEnd());
    for (const more of wrapped.slice(1)) lines.push(`${" ".repeat(indent)}${more}`);
  });
  lines.push(summaryLine(r.checks));
  return `${lines.join("\n")}\n`;
}

/** Words of `text` in lines of at most `width` columns (a longer word gets a line of its own). */
function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let line = "";
  for (const word of text.split(" ").filter((w) => w !== "")) {
    if (line === "") line = word;
    else if (displayWidth(line) + 1 + displayWidth(word) <= width) line += ` ${word}`;
    else {
      out.push(line);
      line = word;
    }
  }
  if (line !== "") out.push(line);
  return out;
}
