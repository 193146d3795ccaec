/**
 * Tables (plain or markdown) and the JSON dump of a benchmark run.
 *
 * @module
 */

import type { LeaseCaseName, LeaseResult } from "./lease.ts";
import type { LoadResult } from "./load.ts";
import { allTargets, type Target } from "./server_process.ts";
import { median } from "./stats.ts";
import { catchUpTimeoutMs, type WatchCaseName, type WatchResult } from "./watch.ts";
import type { CaseName } from "./workload.ts";

/** One measured (target, case, clients) cell. */
export interface CaseRun {
  /** Which server. */
  target: Target;
  /** Which case. */
  caseName: CaseName;
  /** The case's description. */
  title: string;
  /** Concurrent clients. */
  clients: number;
  /** HTTP/2 connections. */
  conns: number;
  /** Figures (with --repeat: the least disturbed attempt). */
  result: LoadResult;
  /** With --repeat: every attempt, in run order. */
  attempts?: LoadResult[];
}

/** One run of the generator against the trivial in-process server. */
export interface GeneratorRun {
  /** Which case's messages were sent. */
  caseName: CaseName;
  /** Concurrent clients. */
  clients: number;
  /** HTTP/2 connections. */
  conns: number;
  /** Figures. */
  result: LoadResult;
}

/** What the ratio rows mean; printed under every table. */
export const ratioLegend = "ratio: req/s is ours/etcd; latency and server µs/req are etcd/ours; " +
  "so > 1 means ours is better in every column";

/**
 * Above this much CPU used by other work on the machine (in % of one core) during a window, a
 * figure is marked as disturbed: the load generator and server did not have the CPUs to
 * themselves.
 */
export const disturbedOtherCpuPct = 25;

/** Legend of the disturbed marker; printed under tables that have one. */
export const disturbedLegend =
  `"!": other work on the machine used more than ${disturbedOtherCpuPct}% CPU during the window; ` +
  "that row is disturbed, rerun it on a quiet machine";

/** `a / b` as "1.23x", or "-" when it is not a finite positive number. */
export function formatRatio(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined || !(b > 0)) return "-";
  const r = a / b;
  return Number.isFinite(r) ? `${r.toFixed(2)}x` : "-";
}

/** Milliseconds with about three significant digits. */
export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return "-";
  if (ms < 1) return ms.toFixed(3);
  if (ms < 10) return ms.toFixed(2);
  if (ms < 100) return ms.toFixed(1);
  return ms.toFixed(0);
}

/** Requests per second, rounded. */
export function formatRate(perSecond: number): string {
  return Number.isFinite(perSecond) ? perSecond.toFixed(0) : "-";
}

function formatMicros(us: number | undefined): string {
  return us !== undefined && Number.isFinite(us) ? us.toFixed(0) : "-";
}

function formatPct(pct: number | undefined): string {
  return pct === undefined || !Number.isFinite(pct) ? "-" : `${pct.toFixed(0)}%`;
}

/** Anything measured with the other-CPU figure. */
interface Disturbable {
  otherCpuPct?: number;
}

function isDisturbed(r: Disturbable): boolean {
  return r.otherCpuPct !== undefined && r.otherCpuPct > disturbedOtherCpuPct;
}

function formatOther(r: Disturbable): string {
  return formatPct(r.otherCpuPct) + (isDisturbed(r) ? " !" : "");
}

/** Renders rows under a header, as an aligned plain table or a markdown table. */
export function renderTable(header: string[], rows: string[][], markdown: boolean): string {
  if (markdown) {
    const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
    const align = header.map((_, i) => (i < 2 ? "---" : "---:"));
    return [line(header), line(align), ...rows.map(line)].join("\n");
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ")
      .trimEnd();
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join(
    "\n",
  );
}

const resultHeader = [
  "clients",
  "server",
  "req/s",
  "avg ms",
  "p50 ms",
  "p99 ms",
  "errors",
  "server CPU",
  "server µs/req",
  "gen CPU",
  "other CPU",
];

function resultCells(clients: number, label: string, r: LoadResult): string[] {
  return [
    String(clients),
    label,
    formatRate(r.throughput),
    formatMs(r.latency.avgMs),
    formatMs(r.latency.p50Ms),
    formatMs(r.latency.p99Ms),
    String(r.errors),
    formatPct(r.serverCpuPct),
    formatMicros(r.serverCpuMicrosPerRequest),
    formatPct(r.clientCpuPct),
    formatOther(r),
  ];
}

function ratioCells(clients: number, ours: LoadResult, etcd: LoadResult): string[] {
  return [
    String(clients),
    "ratio",
    formatRatio(ours.throughput, etcd.throughput),
    formatRatio(etcd.latency.avgMs, ours.latency.avgMs),
    formatRatio(etcd.latency.p50Ms, ours.latency.p50Ms),
    formatRatio(etcd.latency.p99Ms, ours.latency.p99Ms),
    "",
    "",
    formatRatio(etcd.serverCpuMicrosPerRequest, ours.serverCpuMicrosPerRequest),
    "",
    "",
  ];
}

/** One table per case: a row per (clients, server), and a ratio row when both were measured. */
export function renderCaseTables(runs: CaseRun[], markdown: boolean): string {
  const out: string[] = [];
  const caseNames = [...new Set(runs.map((r) => r.caseName))];
  for (const caseName of caseNames) {
    const ofCase = runs.filter((r) => r.caseName === caseName);
    const clientCounts = [...new Set(ofCase.map((r) => r.clients))];
    const rows: string[][] = [];
    let anyRatio = false;
    for (const clients of clientCounts) {
      const etcd = ofCase.find((r) => r.clients === clients && r.target === "etcd");
      const ours = ofCase.find((r) => r.clients === clients && r.target === "ours");
      if (etcd) rows.push(resultCells(clients, "etcd", etcd.result));
      if (ours) rows.push(resultCells(clients, "ours", ours.result));
      if (etcd && ours) {
        rows.push(ratioCells(clients, ours.result, etcd.result));
        anyRatio = true;
      }
    }
    const title = `${caseName}: ${ofCase[0].title}`;
    out.push(markdown ? `#### ${title}` : title);
    out.push("");
    out.push(renderTable(resultHeader, rows, markdown));
    const legends = [
      ...(anyRatio ? [ratioLegend] : []),
      ...(ofCase.some((r) => isDisturbed(r.result)) ? [disturbedLegend] : []),
    ];
    // Markdown needs a paragraph per legend; plain text reads better as consecutive lines.
    for (const [i, l] of legends.entries()) {
      if (markdown || i === 0) out.push("");
      out.push(markdown ? `_${l}_` : l);
    }
    out.push("");
  }
  return out.join("\n");
}

/** The generator-ceiling table. */
export function renderGeneratorTable(runs: GeneratorRun[], markdown: boolean): string {
  const header = [
    "clients",
    "case",
    "req/s",
    "avg ms",
    "p50 ms",
    "p99 ms",
    "errors",
    "CPU",
    "µs/req",
    "other CPU",
  ];
  const rows = runs.map((g) => [
    String(g.clients),
    g.caseName,
    formatRate(g.result.throughput),
    formatMs(g.result.latency.avgMs),
    formatMs(g.result.latency.p50Ms),
    formatMs(g.result.latency.p99Ms),
    String(g.result.errors),
    formatPct(g.result.clientCpuPct),
    formatMicros(g.result.clientCpuMicrosPerRequest),
    formatOther(g.result),
  ]);
  const title = "load generator ceiling (generator + trivial in-process gRPC server, one thread)";
  const legends = runs.some((g) => isDisturbed(g.result)) ? [disturbedLegend] : [];
  return [
    markdown ? `#### ${title}` : title,
    "",
    renderTable(header, rows, markdown),
    ...legends.flatMap((l) => ["", markdown ? `_${l}_` : l]),
    "",
  ].join("\n");
}

/** One measured (target, watch case, watchers) cell. */
export interface WatchRun {
  /** Which server. */
  target: Target;
  /** Which case. */
  caseName: WatchCaseName;
  /** The case's description. */
  title: string;
  /** Watches opened. */
  watchers: number;
  /** Figures (with --repeat: the least disturbed attempt). */
  result: WatchResult;
  /** With --repeat: every attempt, in run order. */
  attempts?: WatchResult[];
}

/** One measured (target, lease case, clients) cell. */
export interface LeaseRun {
  /** Which server. */
  target: Target;
  /** Which case. */
  caseName: LeaseCaseName;
  /** The case's description. */
  title: string;
  /** Concurrent clients. */
  clients: number;
  /** HTTP/2 connections. */
  conns: number;
  /** Figures (with --repeat: the least disturbed attempt). */
  result: LeaseResult;
  /** With --repeat: every attempt, in run order. */
  attempts?: LeaseResult[];
}

/** What the ratio rows of the watch tables mean. */
export const watchRatioLegend = "ratio: events/s is ours/etcd; latency and server µs/event are " +
  "etcd/ours; so > 1 means ours is better in every column";

/** What the per-put columns of the watch tables mean. */
export const watchPerPutLegend = "first-event p99: per put, from its send to the first of its " +
  "events to arrive; spread p99: per put, from its first event to its last; the event p99 " +
  "comes from both, and at 1 000 watchers from a handful of puts";

/** What the memory column of the watch tables means, and why it has no ratio. */
export const watchMemoryLegend = "memory/watcher: growth of the server's VmRSS while the " +
  "watches were created (their streams were already open), over the watcher count; no ratio: " +
  "a garbage-collected heap with free space from earlier cases grows little or not at all, so " +
  "the figure is a lower bound that is only indicative";

/** What the ratio rows of the lease tables mean. */
export const leaseRatioLegend = "ratio: grants/s and keep-alives/s are ours/etcd; latency and " +
  "server µs/op are etcd/ours; so > 1 means ours is better in every column";

/** Bytes as KiB with one decimal (negative when memory shrank), or "-". */
export function formatKiB(bytes: number | undefined): string {
  return bytes !== undefined && Number.isFinite(bytes) ? `${(bytes / 1024).toFixed(1)} KiB` : "-";
}

const watchHeader = [
  "watchers",
  "server",
  "puts/s",
  "events/s",
  "p50 ms",
  "p99 ms",
  "first-event p99 ms",
  "spread p99 ms",
  "missing",
  "errors",
  "memory/watcher",
  "server CPU",
  "server µs/event",
  "gen CPU",
  "other CPU",
];

function watchCells(label: string, r: WatchResult): string[] {
  return [
    String(r.watchers),
    label,
    formatRate(r.putsPerSecond),
    formatRate(r.eventsPerSecond),
    formatMs(r.latency.p50Ms),
    formatMs(r.latency.p99Ms),
    formatMs(r.perPut.firstEvent.p99Ms),
    formatMs(r.perPut.spread.p99Ms),
    String(r.missingEvents),
    String(r.errors + r.putErrors),
    formatKiB(r.memoryPerWatcherBytes),
    formatPct(r.serverCpuPct),
    formatMicros(r.serverCpuMicrosPerEvent),
    formatPct(r.clientCpuPct),
    formatOther(r),
  ];
}

function watchRatioCells(ours: WatchResult, etcd: WatchResult): string[] {
  return [
    String(ours.watchers),
    "ratio",
    "",
    formatRatio(ours.eventsPerSecond, etcd.eventsPerSecond),
    formatRatio(etcd.latency.p50Ms, ours.latency.p50Ms),
    formatRatio(etcd.latency.p99Ms, ours.latency.p99Ms),
    formatRatio(etcd.perPut.firstEvent.p99Ms, ours.perPut.firstEvent.p99Ms),
    formatRatio(etcd.perPut.spread.p99Ms, ours.perPut.spread.p99Ms),
    "",
    "",
    "",
    "",
    formatRatio(etcd.serverCpuMicrosPerEvent, ours.serverCpuMicrosPerEvent),
    "",
    "",
  ];
}

/** What the table of rounds under each watch table means. */
export const watchRoundLegend = "rounds (with --repeat): the p99 of every attempt in run order, " +
  "and the medians over the rounds, which other work on this shared host sways less than any " +
  "one attempt; the ratio row divides the medians (etcd/ours, > 1 is ours ahead)";

const watchRoundHeader = [
  "watchers",
  "server",
  "p99 ms, each round",
  "median p99 ms",
  "median first-event p99 ms",
  "median spread p99 ms",
  "median p50 ms",
];

/** Medians over a cell's attempts of the figures the round table shows. */
interface WatchMedians {
  p99Ms: number;
  firstEventP99Ms: number;
  spreadP99Ms: number;
  p50Ms: number;
}

function watchMedians(attempts: readonly WatchResult[]): WatchMedians {
  return {
    p99Ms: median(attempts.map((a) => a.latency.p99Ms)),
    firstEventP99Ms: median(attempts.map((a) => a.perPut.firstEvent.p99Ms)),
    spreadP99Ms: median(attempts.map((a) => a.perPut.spread.p99Ms)),
    p50Ms: median(attempts.map((a) => a.latency.p50Ms)),
  };
}

/**
 * The rows of a watch case's round table: per (watchers, server) measured more than once, each
 * attempt's p99 and the medians, with a ratio row of the medians when both servers were.
 */
export function watchRoundRows(ofCase: readonly WatchRun[]): string[][] {
  const rows: string[][] = [];
  for (const watchers of [...new Set(ofCase.map((r) => r.watchers))]) {
    const medians: Partial<Record<Target, WatchMedians>> = {};
    for (const target of allTargets) {
      const run = ofCase.find((r) => r.watchers === watchers && r.target === target);
      if (run?.attempts === undefined) continue;
      const m = medians[target] = watchMedians(run.attempts);
      rows.push([
        String(watchers),
        target,
        run.attempts.map((a) => formatMs(a.latency.p99Ms)).join(", "),
        formatMs(m.p99Ms),
        formatMs(m.firstEventP99Ms),
        formatMs(m.spreadP99Ms),
        formatMs(m.p50Ms),
      ]);
    }
    const { etcd, ours } = medians;
    if (etcd && ours) {
      rows.push([
        String(watchers),
        "ratio",
        "",
        formatRatio(etcd.p99Ms, ours.p99Ms),
        formatRatio(etcd.firstEventP99Ms, ours.firstEventP99Ms),
        formatRatio(etcd.spreadP99Ms, ours.spreadP99Ms),
        formatRatio(etcd.p50Ms, ours.p50Ms),
      ]);
    }
  }
  return rows;
}

function pushLegends(out: string[], legends: string[], markdown: boolean): void {
  // Markdown needs a paragraph per legend; plain text reads better as consecutive lines.
  for (const [i, l] of legends.entries()) {
    if (markdown || i === 0) out.push("");
    out.push(markdown ? `_${l}_` : l);
  }
}

/**
 * One table per watch case: a row per (watchers, server), a ratio row when both were measured,
 * and a line on the stream layout and the streams per connection each server allows.
 */
export function renderWatchTables(runs: WatchRun[], markdown: boolean): string {
  const out: string[] = [];
  for (const caseName of [...new Set(runs.map((r) => r.caseName))]) {
    const ofCase = runs.filter((r) => r.caseName === caseName);
    const rows: string[][] = [];
    let anyRatio = false;
    for (const watchers of [...new Set(ofCase.map((r) => r.watchers))]) {
      const etcd = ofCase.find((r) => r.watchers === watchers && r.target === "etcd");
      const ours = ofCase.find((r) => r.watchers === watchers && r.target === "ours");
      if (etcd) rows.push(watchCells("etcd", etcd.result));
      if (ours) rows.push(watchCells("ours", ours.result));
      if (etcd && ours) {
        rows.push(watchRatioCells(ours.result, etcd.result));
        anyRatio = true;
      }
    }
    const title = `${caseName}: ${ofCase[0].title}`;
    out.push(markdown ? `#### ${title}` : title, "");
    out.push(renderTable(watchHeader, rows, markdown));
    const rounds = watchRoundRows(ofCase);
    if (rounds.length > 0) out.push("", renderTable(watchRoundHeader, rounds, markdown));
    const layouts = [
      ...new Set(ofCase.map((r) => `${r.result.streams} streams on ${r.result.conns} connections`)),
    ];
    const advertised = [...new Set(ofCase.map((r) => r.target))].map((t) => {
      const max = ofCase.find((r) => r.target === t)?.result.serverMaxStreamsPerConn;
      return `${t} ${max ?? "no limit"}`;
    });
    const legends = [
      `watchers spread over ${layouts.join(" / ")}, many watches per stream; ` +
      `the writer puts from a thread of its own; ` +
      `streams per connection each server allows: ${advertised.join(", ")}; ` +
      `missing: events not received ${catchUpTimeoutMs / 1000} s after the last put was answered`,
      watchPerPutLegend,
      watchMemoryLegend,
      ...(anyRatio ? [watchRatioLegend] : []),
      ...(rounds.length > 0 ? [watchRoundLegend] : []),
      ...(ofCase.some((r) => isDisturbed(r.result)) ? [disturbedLegend] : []),
    ];
    pushLegends(out, legends, markdown);
    out.push("");
  }
  return out.join("\n");
}

const leaseHeader = [
  "clients",
  "server",
  "grants/s",
  "grant p50 ms",
  "grant p99 ms",
  "keep-alives/s",
  "keep-alive p50 ms",
  "keep-alive p99 ms",
  "errors",
  "server CPU",
  "server µs/op",
  "gen CPU",
  "other CPU",
];

function leaseCells(clients: number, label: string, r: LeaseResult): string[] {
  return [
    String(clients),
    label,
    formatRate(r.grantsPerSecond),
    formatMs(r.grantLatency.p50Ms),
    formatMs(r.grantLatency.p99Ms),
    formatRate(r.keepAlivesPerSecond),
    formatMs(r.keepAliveLatency.p50Ms),
    formatMs(r.keepAliveLatency.p99Ms),
    String(r.errors),
    formatPct(r.serverCpuPct),
    formatMicros(r.serverCpuMicrosPerOp),
    formatPct(r.clientCpuPct),
    formatOther(r),
  ];
}

function leaseRatioCells(clients: number, ours: LeaseResult, etcd: LeaseResult): string[] {
  return [
    String(clients),
    "ratio",
    formatRatio(ours.grantsPerSecond, etcd.grantsPerSecond),
    formatRatio(etcd.grantLatency.p50Ms, ours.grantLatency.p50Ms),
    formatRatio(etcd.grantLatency.p99Ms, ours.grantLatency.p99Ms),
    formatRatio(ours.keepAlivesPerSecond, etcd.keepAlivesPerSecond),
    formatRatio(etcd.keepAliveLatency.p50Ms, ours.keepAliveLatency.p50Ms),
    formatRatio(etcd.keepAliveLatency.p99Ms, ours.keepAliveLatency.p99Ms),
    "",
    "",
    formatRatio(etcd.serverCpuMicrosPerOp, ours.serverCpuMicrosPerOp),
    "",
    "",
  ];
}

/** One table per lease case: a row per (clients, server), and a ratio row when both ran. */
export function renderLeaseTables(runs: LeaseRun[], markdown: boolean): string {
  const out: string[] = [];
  for (const caseName of [...new Set(runs.map((r) => r.caseName))]) {
    const ofCase = runs.filter((r) => r.caseName === caseName);
    const rows: string[][] = [];
    let anyRatio = false;
    for (const clients of [...new Set(ofCase.map((r) => r.clients))]) {
      const etcd = ofCase.find((r) => r.clients === clients && r.target === "etcd");
      const ours = ofCase.find((r) => r.clients === clients && r.target === "ours");
      if (etcd) rows.push(leaseCells(clients, "etcd", etcd.result));
      if (ours) rows.push(leaseCells(clients, "ours", ours.result));
      if (etcd && ours) {
        rows.push(leaseRatioCells(clients, ours.result, etcd.result));
        anyRatio = true;
      }
    }
    const title = `${caseName}: ${ofCase[0].title}`;
    out.push(markdown ? `#### ${title}` : title, "");
    out.push(renderTable(leaseHeader, rows, markdown));
    const legends = [
      ...(anyRatio ? [leaseRatioLegend] : []),
      ...(ofCase.some((r) => isDisturbed(r.result)) ? [disturbedLegend] : []),
    ];
    pushLegends(out, legends, markdown);
    out.push("");
  }
  return out.join("\n");
}
