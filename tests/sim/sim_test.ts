import { ok, strictEqual } from "node:assert/strict";
import { runSimulation, SimFailure, type SimOptions, type SimReport } from "./simulator.ts";

/**
 * Seeds run in CI: `SIM_SEEDS` raises the count, `SIM_SEED` replays one seed, `SIM_UNITS`
 * changes the chaos phase's length, `SIM_VERBOSE=1` prints every event of the run.
 */
const defaultSeeds = 1_000;
const defaultChaosUnits = 2_000;
/** Distinct failures reported before the run stops. */
const maxFailuresReported = 5;

function envNumber(name: string): number | undefined {
  const raw = Deno.env.get(name);
  if (raw === undefined || raw === "") return undefined;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name}=${raw} is not a count`);
  return n;
}

/**
 * A seed's configuration: 3 members for even seeds, 5 for odd; membership changes on every
 * fourth, where joiners start with an empty configuration (as `RaftConfig.voters` documents)
 * on every eighth and with the one in force on the others.
 */
function optionsFor(seed: number): SimOptions {
  return {
    seed,
    members: seed % 2 === 0 ? 3 : 5,
    chaosUnits: envNumber("SIM_UNITS") ?? defaultChaosUnits,
    membershipChanges: seed % 4 === 0,
    joinerConfiguration: seed % 8 === 0 ? "empty" : "current",
    verbose: Deno.env.get("SIM_VERBOSE") === "1",
  };
}

Deno.test("seeded raft simulation: safety on every step, liveness after healing", () => {
  const only = envNumber("SIM_SEED");
  const seeds = only !== undefined
    ? [only]
    : Array.from({ length: envNumber("SIM_SEEDS") ?? defaultSeeds }, (_, i) => i + 1);
  const failures: string[] = [];
  const totals = {
    leadersElected: 0,
    crashes: 0,
    partitions: 0,
    snapshotsInstalled: 0,
    confChangesApplied: 0,
    transfersRequested: 0,
    readsChecked: 0,
    committed: 0,
  };
  const started = performance.now();
  for (const seed of seeds) {
    let report: SimReport;
    try {
      report = runSimulation(optionsFor(seed));
    } catch (err) {
      if (!(err instanceof SimFailure)) throw err;
      failures.push(err.message);
      if (failures.length >= maxFailuresReported) break;
      continue;
    }
    for (const key of Object.keys(totals) as (keyof typeof totals)[]) totals[key] += report[key];
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(`${seeds.length} seeds in ${seconds} s: ${JSON.stringify(totals)}`);
  if (failures.length > 0) {
    throw new Error(
      `${failures.length} seed(s) failed (each says how to rerun it):\n\n` +
        failures.join("\n\n"),
    );
  }
  if (only !== undefined) return;
  // The run must have exercised what it claims to test.
  ok(totals.leadersElected >= seeds.length, `leaders elected: ${totals.leadersElected}`);
  ok(totals.crashes > 0 && totals.partitions > 0, "crashes and partitions happened");
  ok(totals.snapshotsInstalled > 0, "lagging members caught up by snapshot");
  ok(totals.confChangesApplied > 0, "membership changed");
  ok(totals.transfersRequested > 0, "leadership transfers were requested");
  ok(totals.readsChecked > 0, "ReadIndex answers were checked");
});

Deno.test("a disk whose fsync lies breaks raft, and the checks say so with the seed", () => {
  // Raft's guarantees rest on durable votes and entries; without them some seed must fail
  // a safety check. This shows the checks can fail at all.
  let failure: SimFailure | null = null;
  for (let seed = 1; seed <= 200 && failure === null; seed++) {
    try {
      runSimulation({ ...optionsFor(seed), chaosUnits: defaultChaosUnits, sabotage: "fsync lies" });
    } catch (err) {
      if (!(err instanceof SimFailure)) throw err;
      if (err.invariant !== "liveness") failure = err;
    }
  }
  ok(failure !== null, "200 seeds with a lying disk broke no safety check");
  ok(/^sim failed for seed \d+: /.test(failure.message), failure.message);
  ok(failure.message.includes("SIM_SEED="), "the failure says how to rerun the seed");
});

Deno.test("a seed replays exactly", () => {
  const a = runSimulation(optionsFor(4));
  const b = runSimulation(optionsFor(4));
  strictEqual(JSON.stringify(a), JSON.stringify(b));
});
