/**
 * CPU accounting from Linux /proc: the server's CPU time, and the whole machine's busy time, so
 * that every measurement can show how much CPU other work on the machine took meanwhile.
 *
 * @module
 */

/** Linux USER_HZ (`getconf CLK_TCK`); 100 on every mainstream kernel configuration. */
const clockTicksPerSecond = 100;

/** CPU time (user + system) a process has used so far, in seconds, from /proc/<pid>/stat. */
export async function processCpuSeconds(pid: number): Promise<number> {
  return parseProcessStat(await Deno.readTextFile(`/proc/${pid}/stat`));
}

/** CPU seconds (utime + stime) in the text of a /proc/<pid>/stat file. */
export function parseProcessStat(stat: string): number {
  // The command name (field 2) may hold spaces and parentheses; fields after its last ')' are
  // plain. utime and stime are fields 14 and 15 of the line, i.e. 12 and 13 after the name.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / clockTicksPerSecond;
}

/** Busy CPU time of the whole machine so far (all CPUs, everything but idle and iowait), in s. */
export async function machineBusySeconds(): Promise<number | undefined> {
  try {
    return parseMachineStat(await Deno.readTextFile("/proc/stat"));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** Busy seconds in the text of /proc/stat (its aggregate "cpu" line). */
export function parseMachineStat(stat: string): number | undefined {
  const line = stat.split("\n").find((l) => l.startsWith("cpu "));
  if (!line) return undefined;
  const ticks = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal [guest guest_nice]; guest time is already
  // counted in user and nice, so only the first eight fields add up to the total.
  const total = ticks.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = ticks[3] + (ticks[4] ?? 0);
  return (total - idle) / clockTicksPerSecond;
}
