/**
 * Entry of the watch benchmark's writer Worker (see {@linkcode PutWriter} in watch_writer.ts):
 * one connection, puts at a steady rate paced by a timer, at most
 * {@linkcode maxOutstandingPuts} unanswered, each stamped with its send time in the main
 * thread's clock.
 *
 * @module
 */

import { RawGrpcConnection } from "./grpc_raw.ts";
import { maxTrackedPuts } from "./put_arrivals.ts";
import {
  maxOutstandingPuts,
  nextPutInMs,
  PutFrames,
  putsDue,
  until,
  watchTarget,
} from "./watch.ts";
import {
  type FromWriter,
  maxReportedPutErrors,
  type ToWriter,
  type WriterCounts,
  type WriterSetup,
} from "./watch_writer.ts";
import { kvPaths } from "./workload.ts";

/** How often the final drain checks for unanswered puts. */
const drainPollMs = 2;

/** The worker's global scope, as far as this module uses it. */
const scope = globalThis as unknown as {
  onmessage: ((e: MessageEvent<ToWriter>) => void) | null;
  postMessage(message: FromWriter): void;
};

let setup: WriterSetup | undefined;
let connection: RawGrpcConnection | undefined;
let frames: PutFrames | undefined;
let timer: ReturnType<typeof setTimeout> | undefined;
let recording = false;
let inFlight = 0;
const counts: WriterCounts = {
  putsOk: 0,
  putErrors: 0,
  putsSkipped: 0,
  putsInWindow: 0,
  answers: [],
};

function failed(error: unknown): void {
  scope.postMessage({ kind: "failed", error: String(error) });
}

async function open(s: WriterSetup): Promise<void> {
  setup = s;
  connection = new RawGrpcConnection(s.baseUrl);
  frames = new PutFrames(watchTarget(s.caseName, s.runTag), s.keyDigits, s.keyspace, s.seed);
  await connection.unary(kvPaths.put, frames.next(performance.now()));
  scope.postMessage({ kind: "opened" });
}

function write(offsetMs: number): void {
  const conn = connection!;
  const put = frames!;
  const rate = setup!.putRate;
  let issued = 0;
  const start = performance.now();
  const sent = () => counts.putsOk++;
  const failedPut = (error: unknown) => {
    counts.putErrors++;
    counts.firstError ??= `put: ${error}`;
    if (counts.putErrors <= maxReportedPutErrors) {
      scope.postMessage({
        kind: "putError",
        putErrors: counts.putErrors,
        firstError: counts.firstError,
      });
    }
  };
  const answered = () => inFlight--;
  // One wake-up per put, at its due time: a fixed 2 ms tick woke this thread 500 times a
  // second whatever the rate, and its CPU (taken from the cores the server and the watchers
  // share) fell by about a quarter without it (110 -> 80 ms/s at 100 puts/s).
  const tick = () => {
    const elapsedMs = performance.now() - start;
    const due = putsDue(elapsedMs, rate, issued);
    issued += due;
    const send = Math.min(due, maxOutstandingPuts - inFlight);
    counts.putsSkipped += due - send;
    for (let i = 0; i < send; i++) {
      inFlight++;
      const sentAtMs = performance.now() - offsetMs;
      const response = conn.unary(kvPaths.put, put.next(sentAtMs));
      if (recording) {
        counts.putsInWindow++;
        if (counts.answers.length < maxTrackedPuts) {
          const answer: [number, number] = [sentAtMs, NaN];
          counts.answers.push(answer);
          response.then(() => answer[1] = performance.now() - offsetMs, () => {});
        }
      }
      response.then(sent, failedPut).finally(answered);
    }
    timer = setTimeout(tick, nextPutInMs(performance.now() - start, rate, issued));
  };
  timer = setTimeout(tick, 0);
}

async function stop(drainTimeoutMs: number): Promise<void> {
  clearTimeout(timer);
  await until(() => inFlight === 0, drainTimeoutMs, drainPollMs);
  connection?.close();
  scope.postMessage({ kind: "stopped", counts });
}

scope.onmessage = (e) => {
  const message = e.data;
  switch (message.kind) {
    case "open":
      open(message.setup).catch(failed);
      return;
    case "ping":
      scope.postMessage({ kind: "pong", id: message.id, atMs: performance.now() });
      return;
    case "write":
      write(message.offsetMs);
      return;
    case "record":
      recording = message.on;
      return;
    case "stop":
      stop(message.drainTimeoutMs).catch(failed);
      return;
  }
};
