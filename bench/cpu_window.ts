/**
 * CPU accounting over one measurement window, for the stream benchmarks (watch, lease): what the
 * generator, the server and everything else on the machine used, as `runLoad` reports it.
 *
 * @module
 */

import process from "node:process";
import { machineBusySeconds } from "./cpu.ts";
import type { CpuProbe } from "./load.ts";

/** CPU used during a window, each in % of one core (the machine has 100 % per CPU). */
export interface WindowCpu {
  /** Length of the window in ms. */
  elapsedMs: number;
  /** The generator process (this one). */
  clientCpuPct: number;
  /** Generator CPU seconds. */
  clientCpuSeconds: number;
  /** The server, when a probe was given. */
  serverCpuPct?: number;
  /** Server CPU seconds, when a probe was given. */
  serverCpuSeconds?: number;
  /** Machine busy time less generator and server; high values mean disturbed figures. */
  otherCpuPct?: number;
}

function ownCpuSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

/** Started by {@linkcode startCpuWindow}; {@linkcode CpuWindow.stop} gives the figures. */
export interface CpuWindow {
  /** When the window started (performance.now()). */
  readonly startedAt: number;
  /** Ends the window; `endedAt` (performance.now()) defaults to now. */
  stop(endedAt?: number): Promise<WindowCpu>;
}

/** Starts a window: reads the server's, this process's and the machine's CPU time. */
export async function startCpuWindow(serverCpu?: CpuProbe): Promise<CpuWindow> {
  const serverStart = serverCpu ? await serverCpu() : 0;
  const machineStart = await machineBusySeconds();
  const clientStart = ownCpuSeconds();
  const startedAt = performance.now();
  return {
    startedAt,
    async stop(endedAt = performance.now()): Promise<WindowCpu> {
      const clientCpuSeconds = ownCpuSeconds() - clientStart;
      const machineEnd = await machineBusySeconds();
      const serverCpuSeconds = serverCpu ? (await serverCpu()) - serverStart : undefined;
      const elapsedMs = endedAt - startedAt;
      const pct = (cpu: number) => (elapsedMs > 0 ? (cpu / (elapsedMs / 1000)) * 100 : 0);
      const other = machineStart !== undefined && machineEnd !== undefined
        ? Math.max(0, machineEnd - machineStart - clientCpuSeconds - (serverCpuSeconds ?? 0))
        : undefined;
      return {
        elapsedMs,
        clientCpuPct: pct(clientCpuSeconds),
        clientCpuSeconds,
        serverCpuPct: serverCpuSeconds !== undefined ? pct(serverCpuSeconds) : undefined,
        serverCpuSeconds,
        otherCpuPct: other !== undefined ? pct(other) : undefined,
      };
    },
  };
}

/** CPU seconds per operation in µs, or undefined/NaN as `runLoad` reports them. */
export function microsPerOperation(cpuSeconds: number, operations: number): number {
  return operations > 0 ? (cpuSeconds / operations) * 1e6 : NaN;
}
