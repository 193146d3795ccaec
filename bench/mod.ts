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
export {
  type BenchConfig,
  parseConfig,
  parseDuration,
  splitStreamCases,
  usage,
  UsageError,
} from "./cli.ts";
export {
  type CpuWindow,
  microsPerOperation,
  startCpuWindow,
  type WindowCpu,
} from "./cpu_window.ts";
export {
  type BenchMember,
  clusterMemberFlags,
  clusterSizes,
  startClusterServer,
} from "./cluster.ts";
export {
  checkUnaryResponse,
  GrpcCallError,
  grpcFrame,
  grpcPath,
  grpcPrefixBytes,
  maxResponseBytes,
  RawGrpcConnection,
} from "./grpc_raw.ts";
export {
  type ClientKind,
  clientKinds,
  ConnectionPool,
  type CpuProbe,
  type KvConnection,
  type LoadOptions,
  type LoadResult,
  runLoad,
} from "./load.ts";
export { measureGenerator } from "./overhead.ts";
export {
  startTrivialServer,
  type TrivialServer,
  type TrivialServerOptions,
} from "./trivial_server.ts";
export {
  type CaseRun,
  formatKiB,
  formatMs,
  formatRatio,
  type GeneratorRun,
  leaseRatioLegend,
  type LeaseRun,
  ratioLegend,
  renderCaseTables,
  renderGeneratorTable,
  renderLeaseTables,
  renderTable,
  renderWatchTables,
  watchMemoryLegend,
  watchPerPutLegend,
  watchRatioLegend,
  watchRoundLegend,
  watchRoundRows,
  type WatchRun,
} from "./report.ts";
export {
  allTargets,
  freePort,
  type LaunchConfig,
  launchServer,
  serverFlags,
  type ServerHandle,
  ServerStartError,
  startServer,
  type Target,
  targetAvailable,
} from "./server_process.ts";
export {
  maxTrackedPuts,
  PutArrivals,
  type PutArrivalSummary,
  type SlowPut,
  slowPutsListed,
} from "./put_arrivals.ts";
export {
  Histogram,
  type HistogramOptions,
  type LatencySummary,
  median,
  percentile,
} from "./stats.ts";
export {
  advertisedMaxStreams,
  type BidiStreamHandlers,
  clientWindowBytes,
  GrpcMessageReader,
  maxStreamMessageBytes,
  openSession,
  ProtoReader,
  RawBidiStream,
  unaryOnSession,
  WireType,
} from "./grpc_stream.ts";
export {
  keepAliveFrame,
  type KeepAliveScan,
  type LeaseCaseName,
  leaseCases,
  leaseCaseTitle,
  leaseGrantFrame,
  leaseGrantPath,
  type LeaseGrantScan,
  leaseKeepAlivePath,
  type LeaseOptions,
  type LeaseResult,
  leaseTtlSeconds,
  runLease,
  scanKeepAliveResponse,
  scanLeaseGrantResponse,
} from "./lease.ts";
export {
  catchUpTimeoutMs,
  decodeTimestampValue,
  defaultOfferedEventsPerSecond,
  defaultPutRate,
  defaultStreamsPerConn,
  defaultWatchConns,
  defaultWatcherCounts,
  encodeTimestampValue,
  maxOutstandingPuts,
  maxPutRate,
  maxStreamsPerConn,
  maxWatchers,
  nextPutInMs,
  parseVmRssBytes,
  processRssBytes,
  PutFrames,
  putsDue,
  runWatch,
  scanWatchResponse,
  type ServerProbes,
  timestampValueBytes,
  type WatchCaseName,
  watchCases,
  watchCaseTitle,
  watchCreateFrame,
  watchersPerStream,
  type WatchOptions,
  watchPath,
  watchProgressFrame,
  type WatchResponseScan,
  type WatchResult,
  type WatchTarget,
  watchTarget,
} from "./watch.ts";
export {
  allCases,
  caseGroups,
  type CaseName,
  encodeRequest,
  type KVClient,
  type KvMethod,
  kvPaths,
  type KvRequest,
  makeKey,
  prepareCase,
  type PreparedCase,
  prng,
  resolveCases,
  validateShape,
  type WorkloadShape,
} from "./workload.ts";
