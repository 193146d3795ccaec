/**
 * `deno task bench`: drives our server and etcd 3.4.23 with the same gRPC load, one after the
 * other on the same machine, and prints req/s and latency for both with ratios. See
 * docs/benchmarks.md and `deno task bench --help`.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { type BenchConfig, defaultMaxConns, parseConfig, usage, UsageError } from "./cli.ts";
import { startClusterServer } from "./cluster.ts";
import { mergeRounds, roundOrder } from "./rounds.ts";
import { processCpuSeconds } from "./cpu.ts";
import { leaseCaseTitle, runLease } from "./lease.ts";
import { type ClientKind, type LoadOptions, runLoad } from "./load.ts";
import { measureGenerator } from "./overhead.ts";
import {
  type CaseRun,
  type GeneratorRun,
  type LeaseRun,
  renderCaseTables,
  renderGeneratorTable,
  renderLeaseTables,
  renderWatchTables,
  type WatchRun,
} from "./report.ts";
import {
  type LaunchConfig,
  type ServerHandle,
  ServerStartError,
  startServer,
  type Target,
  targetAvailable,
} from "./server_process.ts";
import {
  defaultPutRate,
  defaultWatchConns,
  processRssBytes,
  runWatch,
  watchCaseTitle,
} from "./watch.ts";
import { prepareCase, type PreparedCase } from "./workload.ts";

/** Count mode never measures longer than this per (case, clients). */
const maxCountModeMs = 60_000;
/** Requests still in flight after a window get this long before connections are cut. */
const drainTimeoutMs = 10_000;
/** Bound on the generator-ceiling window (it is a side figure). */
const maxOverheadWindowMs = 2_000;
/** Per case, time the generator runs unrecorded before anything is measured. */
const jitWarmupMs = 600;
/** Bound on waiting for a server's /health. */
const readyTimeoutMs = 60_000;

/** How the report names each client kind. */
const clientDescription: Readonly<Record<ClientKind, string>> = {
  raw: "raw node:http2 gRPC client",
  connect: "connect-node gRPC client",
};

/** Facts about the machine and software, stored in the JSON dump. */
export interface Environment {
  /** ISO time the run started. */
  startedAt: string;
  /** Logical CPUs. */
  cpus: number;
  /** CPU model name from /proc/cpuinfo. */
  cpuModel?: string;
  /** Load average when the run started (other work on the machine skews figures). */
  loadAvg: number[];
  /** Total memory in bytes. */
  memoryBytes?: number;
  /** Kernel release. */
  kernel: string;
  /** Deno, V8, TypeScript versions. */
  deno: typeof Deno.version;
  /** `etcd --version` first line. */
  etcdVersion?: string;
  /** Commit of our repo, if any. */
  gitCommit?: string;
}

async function commandLine(cmd: string, args: string[], cwd?: string): Promise<string | undefined> {
  try {
    const out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "null" })
      .output();
    if (!out.success) return undefined;
    return new TextDecoder().decode(out.stdout).split("\n")[0].trim() || undefined;
  } catch {
    return undefined;
  }
}

async function environment(config: BenchConfig, repoRoot: string): Promise<Environment> {
  let cpuModel: string | undefined;
  try {
    const info = await Deno.readTextFile("/proc/cpuinfo");
    cpuModel = /^model name\s*:\s*(.+)$/m.exec(info)?.[1];
  } catch {
    // Not Linux: leave it out.
  }
  return {
    startedAt: new Date().toISOString(),
    cpus: navigator.hardwareConcurrency,
    cpuModel,
    loadAvg: Deno.loadavg(),
    memoryBytes: Deno.systemMemoryInfo().total,
    kernel: Deno.osRelease(),
    deno: Deno.version,
    etcdVersion: await commandLine(config.etcdBinary, ["--version"]),
    gitCommit: await commandLine("git", ["rev-parse", "HEAD"], repoRoot),
  };
}

function loadOptions(config: BenchConfig, clients: number): LoadOptions {
  return {
    client: config.client,
    clients,
    conns: config.conns ?? Math.min(clients, defaultMaxConns),
    warmupMs: config.warmupMs,
    durationMs: config.durationMs,
    totalRequests: config.totalRequests,
    maxMeasureMs: maxCountModeMs,
    drainTimeoutMs,
  };
}

function progress(text: string): void {
  // Progress goes to stderr so that stdout holds only the tables (e.g. for --markdown > file).
  console.error(text);
}

/** The server currently running, so that a signal can stop it. */
let running: ServerHandle | undefined;

/** Figures of every case kind, filled in as the targets run. */
interface Runs {
  kv: CaseRun[];
  watch: WatchRun[];
  lease: LeaseRun[];
}

/** Counts watch runs, so that each uses keys of its own on a server shared by several runs. */
let watchRunCount = 0;

async function runStreamCases(
  target: Target,
  config: BenchConfig,
  server: ServerHandle,
  serverCpu: () => Promise<number>,
  runs: Runs,
): Promise<void> {
  for (const caseName of config.watchCases) {
    for (const watchers of config.watchers) {
      const result = await runWatch(server.clientUrl, {
        caseName,
        watchers,
        conns: config.conns ?? defaultWatchConns,
        streamsPerConn: config.streamsPerConn,
        putRate: config.putRate ?? defaultPutRate(watchers),
        warmupMs: config.warmupMs,
        durationMs: config.durationMs,
        runTag: `r${++watchRunCount}`,
        keyDigits: config.shape.keySize,
        keyspace: config.shape.keyspace,
        seed: config.shape.seed,
      }, { cpu: serverCpu, rssBytes: () => processRssBytes(server.pid) });
      runs.watch.push({
        target,
        caseName,
        title: watchCaseTitle(caseName, config.putRate),
        watchers,
        result,
      });
      progress(
        `[${target}] ${caseName} watchers=${watchers}: ${result.eventsPerSecond.toFixed(0)} ` +
          `events/s, p99 ${result.latency.p99Ms.toFixed(2)} ms` +
          (result.errors || result.putErrors
            ? `, ${result.errors + result.putErrors} errors (first: ${result.firstError})`
            : ""),
      );
    }
  }
  for (const caseName of config.leaseCases) {
    for (const clients of config.clients) {
      const conns = Math.min(config.conns ?? Math.min(clients, defaultMaxConns), clients);
      const result = await runLease(server.clientUrl, {
        clients,
        conns,
        warmupMs: config.warmupMs,
        durationMs: config.durationMs,
        drainTimeoutMs,
      }, serverCpu);
      runs.lease.push({ target, caseName, title: leaseCaseTitle(), clients, conns, result });
      progress(
        `[${target}] ${caseName} clients=${clients}: ${result.grantsPerSecond.toFixed(0)} ` +
          `grants/s, ${result.keepAlivesPerSecond.toFixed(0)} keep-alives/s` +
          (result.errors ? `, ${result.errors} errors (first: ${result.firstError})` : ""),
      );
    }
  }
}

async function runTarget(
  target: Target,
  config: BenchConfig,
  launch: LaunchConfig,
  cases: PreparedCase[],
  allRuns: Runs,
): Promise<void> {
  const runs = allRuns.kv;
  progress(
    `[${target}] starting${config.cluster > 1 ? ` a ${config.cluster}-member cluster` : ""}`,
  );
  const server = config.cluster > 1
    ? await startClusterServer(target, config.cluster, launch)
    : await startServer(target, launch);
  running = server;
  const serverCpu = server.cpuSeconds ?? (() => processCpuSeconds(server.pid));
  try {
    progress(
      `[${target}] healthy at ${server.clientUrl} (pid ${server.pid}` +
        `${config.cluster > 1 ? ", the leader" : ""})`,
    );
    for (const testCase of cases) {
      for (const clients of config.clients) {
        const options = loadOptions(config, clients);
        const result = await runLoad(server.clientUrl, testCase, options, serverCpu);
        runs.push({
          target,
          caseName: testCase.name,
          title: testCase.title,
          clients,
          conns: Math.min(options.conns, clients),
          result,
        });
        progress(
          `[${target}] ${testCase.name} clients=${clients}: ${result.throughput.toFixed(0)} req/s` +
            `, p99 ${result.latency.p99Ms.toFixed(2)} ms` +
            (result.errors ? `, ${result.errors} errors (first: ${result.firstError})` : ""),
        );
      }
    }
    await runStreamCases(target, config, server, serverCpu, allRuns);
  } finally {
    running = undefined;
    await server.stop();
    progress(`[${target}] stopped`);
  }
}

/**
 * Runs every case briefly against the trivial server, unrecorded, so that V8 has compiled the
 * generator's hot paths before the first measured cell: otherwise whichever server runs first
 * would pay for the generator's JIT warm-up.
 */
async function warmGenerator(config: BenchConfig, cases: PreparedCase[]): Promise<void> {
  // The watch and lease cases warm up against each server instead: no trivial server speaks them.
  if (cases.length === 0) return;
  const clients = Math.max(...config.clients);
  for (const testCase of cases) {
    await measureGenerator(testCase, {
      ...loadOptions(config, clients),
      warmupMs: jitWarmupMs / 2,
      durationMs: jitWarmupMs / 2,
      totalRequests: undefined,
    });
  }
}

async function measureOverhead(
  config: BenchConfig,
  cases: PreparedCase[],
): Promise<GeneratorRun[]> {
  // Put messages are the largest requests the cases send; one key keeps the case cheap.
  const testCase = cases.find((c) => c.name === "put-single") ?? cases[0];
  const out: GeneratorRun[] = [];
  for (const clients of config.clients) {
    const options = {
      ...loadOptions(config, clients),
      durationMs: Math.min(config.durationMs, maxOverheadWindowMs),
      warmupMs: Math.min(config.warmupMs, maxOverheadWindowMs / 4),
      totalRequests: undefined,
    };
    const result = await measureGenerator(testCase, options);
    out.push({ caseName: testCase.name, clients, conns: Math.min(options.conns, clients), result });
    progress(`[generator] clients=${clients}: ${result.throughput.toFixed(0)} req/s`);
  }
  return out;
}

/** Runs the benchmark for `args`; returns the process exit code. */
export async function main(args: string[]): Promise<number> {
  const repoRoot = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");
  let config: BenchConfig;
  try {
    config = parseConfig(args, repoRoot);
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`error: ${error.message}\n\n${usage}`);
      return 2;
    }
    throw error;
  }
  if (config.help) {
    console.log(usage);
    return 0;
  }
  const launch: LaunchConfig = {
    etcdBinary: config.etcdBinary,
    oursEntry: config.oursEntry,
    readyTimeoutMs,
  };
  const notes: string[] = [];
  if (config.cluster > 1) {
    notes.push(
      `each server runs as a ${config.cluster}-member cluster on loopback; the load goes to ` +
        `the leader; server CPU is the sum over the members`,
    );
  }
  const targets: Target[] = [];
  for (const target of config.targets) {
    if (await targetAvailable(target, launch)) targets.push(target);
    else if (config.onlyGiven) {
      console.error(
        `error: ${target} is not available (${
          target === "etcd" ? launch.etcdBinary : launch.oursEntry
        } not found)`,
      );
      return 1;
    } else {
      notes.push(
        `${target} skipped: ${target === "etcd" ? launch.etcdBinary : launch.oursEntry} not found`,
      );
      progress(`[${target}] skipped: not found`);
    }
  }
  if (targets.length === 0) {
    console.error("error: no server to measure");
    return 1;
  }

  const env = await environment(config, repoRoot);
  const cases = config.cases.map((name) => prepareCase(name, config.shape));
  progress("[generator] warming up");
  await warmGenerator(config, cases);
  const generator = config.skipOverhead || cases.length === 0
    ? []
    : await measureOverhead(config, cases);
  const rounds: Runs = { kv: [], watch: [], lease: [] };
  let failed = false;
  const failedTargets = new Set<Target>();
  // --repeat N: N rounds in which the servers take turns (see bench/rounds.ts).
  for (let round = 0; round < config.repeat; round++) {
    for (const target of roundOrder(targets, round)) {
      if (failedTargets.has(target)) continue;
      try {
        await runTarget(target, config, launch, cases, rounds);
      } catch (error) {
        // One server failing to start must not lose the other's figures.
        if (!(error instanceof ServerStartError)) throw error;
        failed = true;
        failedTargets.add(target);
        console.error(`error: ${error.message}`);
        notes.push(`${target} failed to start: see the error above`);
      }
    }
  }
  const runs: Runs = {
    kv: mergeRounds(rounds.kv, (r) => `${r.target} ${r.caseName} ${r.clients}`),
    watch: mergeRounds(rounds.watch, (r) => `${r.target} ${r.caseName} ${r.watchers}`),
    lease: mergeRounds(rounds.lease, (r) => `${r.target} ${r.caseName} ${r.clients}`),
  };

  const mode = config.totalRequests !== undefined
    ? `${config.totalRequests} requests per cell`
    : `${config.durationMs} ms window per cell`;
  const repeat = config.repeat > 1
    ? `; each cell run ${config.repeat} times (in rounds, the servers taking turns, each started ` +
      `fresh, the first of a round last in the next), the least disturbed shown`
    : "";
  const header = [
    `${env.cpus} CPUs (${env.cpuModel ?? "unknown"}), load avg at start ${
      env.loadAvg.map((l) => l.toFixed(2)).join(" ")
    }; ${clientDescription[config.client]}; ${mode}, ${config.warmupMs} ms warm-up; ` +
    `key ${config.shape.keySize} B, value ${config.shape.valueSize} B, keyspace ${config.shape.keyspace}` +
    repeat,
    ...notes,
  ];
  const firstErrors = [
    ...runs.kv.filter((r) => r.result.firstError !== undefined)
      .map((r) => `${r.target} ${r.caseName} clients=${r.clients}: ${r.result.firstError}`),
    ...runs.watch.filter((r) => r.result.firstError !== undefined)
      .map((r) => `${r.target} ${r.caseName} watchers=${r.watchers}: ${r.result.firstError}`),
    ...runs.lease.filter((r) => r.result.firstError !== undefined)
      .map((r) => `${r.target} ${r.caseName} clients=${r.clients}: ${r.result.firstError}`),
  ];
  console.log(
    [
      "",
      ...header.map((h) => (config.markdown ? `_${h}_` : h)),
      "",
      generator.length ? renderGeneratorTable(generator, config.markdown) : "",
      renderCaseTables(runs.kv, config.markdown),
      renderWatchTables(runs.watch, config.markdown),
      renderLeaseTables(runs.lease, config.markdown),
      ...firstErrors.map((e) => `error seen: ${e}`),
    ].filter((s, i, all) => !(s === "" && all[i - 1] === "")).join("\n"),
  );

  await Deno.mkdir(config.outDir, { recursive: true });
  const stamp = env.startedAt.replace(/[:.]/g, "-");
  const dump = {
    env,
    config,
    notes,
    generator,
    runs: runs.kv,
    watchRuns: runs.watch,
    leaseRuns: runs.lease,
  };
  const json = JSON.stringify(dump, null, 2);
  const file = `${config.outDir}/bench-${stamp}.json`;
  await Deno.writeTextFile(file, json);
  await Deno.writeTextFile(`${config.outDir}/latest.json`, json);
  progress(`JSON: ${file}`);
  return failed ? 1 : 0;
}

if (import.meta.main) {
  const onSignal = async () => {
    await running?.stop();
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  Deno.exit(await main(Deno.args));
}
