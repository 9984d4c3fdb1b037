/** A small SVG line chart for the cluster page: one series, a round y-axis maximum, no library. */
import { formatDuration } from "../lib/format.js";
import { linePath, niceMax } from "../lib/status-history.js";

const W = 600;
const H = 140;

export function LineChart(props: { title: string; unit: string; points: { x: number; y: number }[]; xMin: number; xMax: number; format(v: number): string }) {
  const yMax = niceMax(Math.max(0, ...props.points.map((p) => p.y)));
  const d = linePath(props.points, { width: W, height: H, xMin: props.xMin, xMax: props.xMax, yMax });
  const last = props.points.at(-1)?.y;
  return (
    <figure class="chart">
      <figcaption>
        <span>{props.title}</span>
        <strong>{last === undefined ? "–" : `${props.format(last)} ${props.unit}`}</strong>
      </figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} preserveAspectRatio="none" role="img" aria-label={`${props.title}, last few minutes; current ${last === undefined ? "unknown" : props.format(last)} ${props.unit}`}>
        {[0.25, 0.5, 0.75].map((f) => <line class="grid" x1="0" x2={W} y1={H * f} y2={H * f} />)}
        {d && <path class="series" d={d} vector-effect="non-scaling-stroke" />}
      </svg>
      <div class="axis muted"><span>{props.points.length === 0 ? "collecting samples…" : `${formatDuration((props.xMax - props.xMin) / 1000)} ago`}</span><span>{`scale ${props.format(yMax)} ${props.unit}`}</span><span>now</span></div>
    </figure>
  );
}
