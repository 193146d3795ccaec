/**
 * How a member is run: the `deno run` arguments that `deno task start`, the benchmarks, the
 * local cluster script and the end-to-end tests all use, so that what is measured and tested
 * is what users start.
 *
 * @module
 */

/** Young-generation size, MiB per semi-space (V8 keeps two). */
export const semiSpaceMiB = 16;

/**
 * V8 flags of a member. The young generation is fixed at its full size from the start: V8
 * otherwise grows it once, seconds into the first sustained load, and touching the new pages
 * (page faults, zeroing) stalled the event loop for about 100 ms (measured: 1 000 watchers on
 * one key, puts delivered in 11-13 ms instead of 3 for that span, with half of it system time
 * in page faults). Deno reads V8 flags only from its command line or `DENO_V8_FLAGS`.
 */
export const serverV8Flags: readonly string[] = [
  `--min-semi-space-size=${semiSpaceMiB}`,
  `--max-semi-space-size=${semiSpaceMiB}`,
];

/** Arguments of `deno` that run the member at `entry` with etcd-style `flags`. */
export function serverRunArgs(entry: string, flags: readonly string[] = []): string[] {
  return ["run", "-A", `--v8-flags=${serverV8Flags.join(",")}`, entry, ...flags];
}
