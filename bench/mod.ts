/**
 * The benchmark behind `deno task bench` (entry point: bench/main.ts): our server against etcd
 * 3.4.23 under the same gRPC load. This module re-exports its reusable parts.
 *
 * @module
 */

export {
  machineBusySeconds,
  parseMachineStat,
  parseProcessStat,
  processCpuSeconds,
} from "./cpu.ts";
export { type BenchConfig, parseConfig, parseDuration, usage, UsageError } from "./cli.ts";
export {
  ConnectionPool,
  type CpuProbe,
  type LoadOptions,
  type LoadResult,
  runLoad,
} from "./load.ts";
export { measureGenerator, startTrivialServer, type TrivialServer } from "./overhead.ts";
export {
  type CaseRun,
  formatMs,
  formatRatio,
  type GeneratorRun,
  ratioLegend,
  renderCaseTables,
  renderGeneratorTable,
  renderTable,
} from "./report.ts";
export {
  allTargets,
  freePort,
  type LaunchConfig,
  serverFlags,
  type ServerHandle,
  ServerStartError,
  startServer,
  type Target,
  targetAvailable,
} from "./server_process.ts";
export { Histogram, type HistogramOptions, type LatencySummary, percentile } from "./stats.ts";
export {
  allCases,
  type CallFn,
  caseGroups,
  type CaseName,
  type KVClient,
  makeKey,
  prepareCase,
  type PreparedCase,
  prng,
  resolveCases,
  validateShape,
  type WorkloadShape,
} from "./workload.ts";
