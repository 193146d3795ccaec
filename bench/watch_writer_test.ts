import { ok, strictEqual, throws } from "node:assert/strict";
import { startInProcess } from "../tests/support/in_process.ts";
import { runWatch } from "./watch.ts";
import { clockOffsetMs, type ClockSample, PutWriter } from "./watch_writer.ts";

Deno.test("the clock offset comes from the probe with the shortest round trip", () => {
  // The other clock is 1000 ms ahead; each probe's legs take different times.
  const probe = (sentMs: number, outMs: number, backMs: number): ClockSample => ({
    sentMs,
    remoteMs: sentMs + outMs + 1000,
    receivedMs: sentMs + outMs + backMs,
  });
  strictEqual(clockOffsetMs([probe(10, 0.05, 0.05)]), 1000, "even legs: exact");
  const samples = [probe(0, 3, 0.1), probe(10, 0.1, 0.1), probe(20, 0.1, 5)];
  strictEqual(clockOffsetMs(samples), 1000, "the one even, short probe decides");
  const skewed = clockOffsetMs([probe(0, 0.3, 0.1), probe(10, 2, 2)]);
  ok(Math.abs(skewed - 1000) <= 0.2, "off by at most half the shortest round trip");
  throws(() => clockOffsetMs([]));
});

Deno.test("a watch run with its writer on another thread times every event from its put", async () => {
  const member = await startInProcess();
  try {
    const watchers = 20;
    const result = await runWatch(member.clientUrl, {
      caseName: "watch-key",
      watchers,
      conns: 1,
      streamsPerConn: 2,
      putRate: 100,
      warmupMs: 100,
      durationMs: 500,
      runTag: "writer-test",
      keyDigits: 8,
      keyspace: 1000,
      seed: 1,
    });
    strictEqual(result.errors, 0, result.firstError);
    strictEqual(result.putErrors, 0, result.firstError);
    strictEqual(result.missingEvents, 0, "every answered put reached every watcher");
    ok(result.events > 0 && result.putsPerSecond > 0, "puts were sent and seen in the window");
    strictEqual(result.latency.count, result.events, "every event in the window was timed");
    // The writer stamps puts in the watchers' clock: a put answered through the server takes
    // some time, never none, and far less than the run.
    ok(result.latency.minMs > 0, `min ${result.latency.minMs} ms`);
    ok(result.latency.maxMs < 5_000, `max ${result.latency.maxMs} ms`);
    // Per put: the puts seen in the window reached all the watchers (but for the window's
    // edges, which may cut a put's events in two), every put the writer sent in its window
    // was answered, and answers and first events came after the sends. (The writer's window
    // starts and ends a message later than the watchers', by more than a put under load.)
    const perPut = result.perPut;
    const edge = 2;
    ok(
      result.events <= perPut.puts * watchers && result.events > (perPut.puts - edge) * watchers,
      `${result.events} events of ${perPut.puts} puts`,
    );
    const putsInWindow = Math.round(result.putsPerSecond * result.elapsedMs / 1000);
    strictEqual(perPut.answer.count, putsInWindow, "every put of the writer's window answered");
    ok(perPut.firstEvent.minMs > 0 && perPut.answer.minMs > 0, "answers and events follow sends");
    ok(perPut.spread.maxMs <= result.latency.maxMs, "a put's spread is within its latency");
    ok(perPut.slowest.length > 0 && perPut.slowest[0].firstEventMs >= perPut.firstEvent.p50Ms);
    ok(Math.abs(perPut.slowest[0].sentAtEpochMs - Date.now()) < 60_000, "epoch send time");
  } finally {
    await member.stop();
  }
});

Deno.test("the writer's send times are in the clock of the thread that started it", async () => {
  const member = await startInProcess();
  const writer = new PutWriter();
  try {
    await writer.open({
      baseUrl: member.clientUrl,
      caseName: "watch-key",
      runTag: "clock-test",
      keyDigits: 8,
      keyspace: 1000,
      seed: 1,
      putRate: 10,
    });
    await writer.start();
    const offset = writer.offsetMs!;
    // A worker's clock starts with the worker: far behind this thread's, which started first.
    ok(offset < -1, `offset ${offset} ms`);
    for (let i = 0; i < 5; i++) {
      const probe = await writer.probeClock();
      const local = probe.remoteMs - offset;
      // The offset's error is at most half the shortest round trip it was measured with.
      ok(
        local >= probe.sentMs - 1 && local <= probe.receivedMs + 1,
        `worker time ${local} ms outside [${probe.sentMs}, ${probe.receivedMs}]`,
      );
    }
    const counts = await writer.stop(5_000);
    strictEqual(counts.putErrors, 0, counts.firstError);
  } finally {
    writer.close();
    await member.stop();
  }
});
