/** What every scenario gets: the running cluster, the sizes of this run, and a progress printer. */
import type { BenchCluster } from "../bench-cluster.js";
import type { ScenarioReport } from "../report.js";

export interface BenchSizes {
  /** Bindings published in the throughput run. */
  throughputChanges: number;
  /** Length and rate of the paced latency run. */
  latencySeconds: number;
  latencyRate: number;
  /** Bindings n3 misses while it is down. */
  catchupChanges: number;
  /** Bindings held by every node when memory is read. */
  memoryBindings: number;
  /** Edits per location.publish request and requests in flight in bulk loads. */
  publishBatch: number;
  publishInFlight: number;
  /** Hub scenario: bindings per throughput run, receiving agents, length of the paced latency run. */
  hubThroughputChanges: number;
  hubReceivers: number;
  hubLatencySeconds: number;
  /** Hub scenario, every agent publishing: the paced run's rate in all, and the hub's relayLingerMs. */
  hubOriginsRate: number;
  hubOriginsLingerMs: number;
  /** Hub scenario, the hub tier: sink agents on the hub, and the paced run's rate (`--hub-tier-agents`, `--hub-tier-rate`). */
  hubTierAgents: number;
  hubTierRate: number;
  /** Hub scenario, many publishers (`hub.many`): sink agents, edits/s in all, the hub's relayLingerMs. */
  hubManyAgents: number;
  hubManyRate: number;
  hubManyLingerMs: number;
  /** Runs of the throughput and catch-up scenarios; their median is reported (the box is noisy). */
  repeat: number;
}

export interface ScenarioContext {
  cluster: BenchCluster;
  sizes: BenchSizes;
  quick: boolean;
  log(line: string): void;
}

export type Scenario = (ctx: ScenarioContext) => Promise<ScenarioReport>;

export const fmt = (n: number, digits = 0) =>
  n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });

/** The lower median: always one of the values, so the run it came from can be found. */
export const median = (values: readonly number[]): number => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)]!;
