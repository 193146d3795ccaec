import { ok, strictEqual } from "node:assert/strict";
import {
  machineBusySeconds,
  parseMachineStat,
  parseProcessStat,
  processCpuSeconds,
} from "./cpu.ts";

Deno.test("parseProcessStat reads utime + stime even with ') ' in the command name", () => {
  // Fields: pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
  // utime stime ...
  const line = "4242 (we (ird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9";
  strictEqual(parseProcessStat(line), 3);
});

Deno.test("parseMachineStat counts everything but idle and iowait, and not guest twice", () => {
  const stat = [
    "cpu  1000 10 500 8000 300 0 90 0 700 0",
    "cpu0 500 5 250 4000 150 0 45 0 350 0",
  ].join("\n");
  // busy = user + nice + system + irq + softirq + steal = 1000 + 10 + 500 + 0 + 90 + 0
  strictEqual(parseMachineStat(stat), 16);
  strictEqual(parseMachineStat("intr 1 2 3"), undefined);
});

Deno.test("the probes read this process and this machine", async () => {
  // Burn a little CPU so that the counters move past one tick.
  const start = await processCpuSeconds(Deno.pid);
  const until = performance.now() + 50;
  let x = 0;
  while (performance.now() < until) x += Math.sqrt(x + 1);
  ok(x > 0);
  ok((await processCpuSeconds(Deno.pid)) >= start);
  const busy = await machineBusySeconds();
  ok(busy === undefined || busy > 0);
});
