/**
 * The watch benchmark's writer, on a thread of its own (a Worker). On the thread that takes in
 * the events (100 000 a second), a put's bytes left only once the events read before it were
 * handled: the put's send time was stamped, then it waited, and the wait counted as the
 * server's put-to-event latency. Alone on its thread, the writer sends each put as it stamps
 * it.
 *
 * The send times are in the main thread's clock: {@linkcode PutWriter.start} measures the
 * offset between the two threads' `performance.now()` first ({@linkcode clockOffsetMs}).
 *
 * @module
 */

import { assert } from "../internal/assert.ts";
import type { WatchCaseName } from "./watch.ts";

/** What the writer needs to know to open its connection and build its puts. */
export interface WriterSetup {
  /** The server's client URL. */
  baseUrl: string;
  /** Which case (one key, or random keys under a prefix). */
  caseName: WatchCaseName;
  /** Makes the run's keys unique (see `watchTarget`). */
  runTag: string;
  /** Digits of the random keys under the prefix. */
  keyDigits: number;
  /** Distinct random keys under the prefix. */
  keyspace: number;
  /** Seed of the random keys. */
  seed: number;
  /** Puts per second. */
  putRate: number;
}

/** What the writer did, counted over the whole run (`putsInWindow`: while recording). */
export interface WriterCounts {
  /** Puts answered with success. */
  putsOk: number;
  /** Puts that failed. */
  putErrors: number;
  /** Due puts skipped because too many were unanswered. */
  putsSkipped: number;
  /** Puts sent while recording. */
  putsInWindow: number;
  /** The first failure. */
  firstError?: string;
  /**
   * Puts sent while recording (at most `maxTrackedPuts`), each as its send time and the time
   * its answer came, both in the main thread's clock.
   */
  answers: Array<[number, number]>;
}

/** Messages to the worker. */
export type ToWriter =
  | { kind: "open"; setup: WriterSetup }
  | { kind: "ping"; id: number }
  | { kind: "write"; offsetMs: number }
  | { kind: "record"; on: boolean }
  | { kind: "stop"; drainTimeoutMs: number };

/** Messages from the worker. */
export type FromWriter =
  | { kind: "opened" }
  | { kind: "pong"; id: number; atMs: number }
  | { kind: "putError"; putErrors: number; firstError: string }
  | { kind: "stopped"; counts: WriterCounts }
  | { kind: "failed"; error: string };

/** One clock probe: sent and answered in local time, stamped by the other side between. */
export interface ClockSample {
  /** Local time the probe was sent. */
  sentMs: number;
  /** The other side's time when it answered. */
  remoteMs: number;
  /** Local time the answer arrived. */
  receivedMs: number;
}

/**
 * The other side's clock minus the local one, from the probe with the shortest round trip
 * (as NTP does): its error is at most half that round trip, which the others only exceed.
 */
export function clockOffsetMs(samples: readonly ClockSample[]): number {
  assert(samples.length > 0, "at least one clock sample");
  let best = samples[0];
  for (const s of samples) {
    if (s.receivedMs - s.sentMs < best.receivedMs - best.sentMs) best = s;
  }
  return best.remoteMs - (best.sentMs + best.receivedMs) / 2;
}

/** Clock probes per offset measurement. */
const clockProbes = 50;
/** Bound on every exchange with the worker but the final drain. */
const replyTimeoutMs = 30_000;
/** Failures the worker reports one by one; past them the run stops anyway. */
export const maxReportedPutErrors = 1_000;

/** The main thread's side of the writer. */
export class PutWriter {
  readonly #worker: Worker;
  #waiting: { kind: FromWriter["kind"]; resolve: (m: FromWriter) => void } | undefined;
  #failure: string | undefined;
  #putErrors = 0;
  #firstError: string | undefined;
  #offsetMs: number | undefined;
  #nextProbe = 0;

  /** Starts the worker; {@linkcode open} connects it. */
  constructor() {
    this.#worker = new Worker(new URL("./watch_writer_worker.ts", import.meta.url).href, {
      type: "module",
    });
    this.#worker.onmessage = (e: MessageEvent<FromWriter>) => this.#receive(e.data);
    this.#worker.onerror = (e) => {
      e.preventDefault();
      this.#fail(`the writer's worker failed: ${e.message}`);
    };
  }

  /** Puts failed so far (as the worker last reported). */
  get putErrors(): number {
    return this.#putErrors;
  }

  /** The first put failure, if any. */
  get firstError(): string | undefined {
    return this.#firstError;
  }

  /** Connects to the server and sends one put, answered (the write path is then warm). */
  async open(setup: WriterSetup): Promise<void> {
    await this.#ask({ kind: "open", setup }, "opened", replyTimeoutMs);
  }

  /** Measures the worker's clock against this thread's, then starts writing at the rate. */
  async start(): Promise<void> {
    const samples: ClockSample[] = [];
    for (let i = 0; i < clockProbes; i++) samples.push(await this.probeClock());
    this.#offsetMs = clockOffsetMs(samples);
    this.#worker.postMessage({ kind: "write", offsetMs: this.#offsetMs } as ToWriter);
  }

  /** The worker's clock minus this thread's, as {@linkcode start} measured it. */
  get offsetMs(): number | undefined {
    return this.#offsetMs;
  }

  /** One clock probe: this thread's time around the worker's. */
  async probeClock(): Promise<ClockSample> {
    const id = this.#nextProbe++;
    const sentMs = performance.now();
    const pong = await this.#ask({ kind: "ping", id }, "pong", replyTimeoutMs);
    const receivedMs = performance.now();
    assert(pong.kind === "pong" && pong.id === id, "pong answers its ping");
    return { sentMs, remoteMs: pong.atMs, receivedMs };
  }

  /** Counts the puts sent from now on as the window's (or stops counting them). */
  record(on: boolean): void {
    this.#worker.postMessage({ kind: "record", on } as ToWriter);
  }

  /** Stops writing and waits (at most `drainTimeoutMs`) for the unanswered puts. */
  async stop(drainTimeoutMs: number): Promise<WriterCounts> {
    const reply = await this.#ask(
      { kind: "stop", drainTimeoutMs },
      "stopped",
      drainTimeoutMs + replyTimeoutMs,
    );
    assert(reply.kind === "stopped", "stop answers stopped");
    return reply.counts;
  }

  /** Ends the worker (and its connection). */
  close(): void {
    this.#worker.terminate();
    this.#fail("the writer was closed");
  }

  #receive(message: FromWriter): void {
    if (message.kind === "putError") {
      this.#putErrors = message.putErrors;
      this.#firstError ??= message.firstError;
      return;
    }
    if (message.kind === "failed") return this.#fail(message.error);
    const waiting = this.#waiting;
    if (waiting?.kind !== message.kind) return this.#fail(`unexpected ${message.kind}`);
    this.#waiting = undefined;
    waiting.resolve(message);
  }

  #fail(error: string): void {
    this.#failure ??= error;
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.resolve({ kind: "failed", error });
  }

  async #ask(
    message: ToWriter,
    replyKind: FromWriter["kind"],
    timeoutMs: number,
  ): Promise<FromWriter> {
    if (this.#failure !== undefined) throw new Error(this.#failure);
    assert(this.#waiting === undefined, "one exchange at a time");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const reply = new Promise<FromWriter>((resolve) => {
      this.#waiting = { kind: replyKind, resolve };
      timer = setTimeout(() => this.#fail(`no ${replyKind} within ${timeoutMs} ms`), timeoutMs);
    });
    this.#worker.postMessage(message);
    try {
      const answer = await reply;
      if (answer.kind === "failed") throw new Error(answer.error);
      return answer;
    } finally {
      clearTimeout(timer);
    }
  }
}
