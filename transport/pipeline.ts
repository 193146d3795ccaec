/**
 * The pipeline: messages that find no stream (the peer has not dialled us, or its stream
 * broke) are POSTed to the peer's `/raft` one at a time, in order. A failed post means the
 * peer is unreachable: what is still queued is dropped, since raft resends what matters
 * (Raft paper §5.3: leaders retry AppendEntries indefinitely).
 *
 * Snapshots go to `/raft/snapshot` with the backend database streamed after the message, one
 * at a time per peer.
 *
 * @module
 */
import type { Message } from "../raft/types.ts";
import { RaftPath } from "./handler.ts";
import { peerRequestHeaders } from "./headers.ts";
import { encodeFrame, encodeMessage } from "./message_codec.ts";
import { type PeerLink, readAnswerText } from "./peer_link.ts";

/** Provides the backend database to stream after a MsgSnap. */
export type SnapshotBodySource = (
  message: Message,
) => ReadableStream<Uint8Array> | Promise<ReadableStream<Uint8Array>>;

/** At most one "dropped messages" line per peer in this interval. */
const dropLogIntervalMs = 5_000;

/** Posts messages and snapshots to one peer. */
export class Pipeline {
  #droppedSinceLog = 0;
  #lastDropLogAt = -Infinity;
  #queue: Uint8Array[] = [];
  #worker: Promise<void> | null = null;
  #snapshot: Promise<void> | null = null;

  /** A pipeline for the peer of `link`. */
  constructor(private readonly link: PeerLink) {}

  /**
   * Queues a message payload. False when the pipeline's queue or the peer's budget is full,
   * or the link stopped; the caller drops the message.
   */
  enqueue(payload: Uint8Array): boolean {
    const { link } = this;
    if (link.signal.aborted) return false;
    if (this.#queue.length >= link.limits.maxPipelineQueuedMessages) return false;
    if (!link.budget.reserve(payload.length)) return false;
    this.#queue.push(payload);
    this.#worker ??= this.#work().finally(() => this.#worker = null);
    return true;
  }

  /** Resolves when the worker and any snapshot send have ended (after the link stopped). */
  async settled(): Promise<void> {
    await Promise.allSettled([this.#worker, this.#snapshot]);
  }

  async #work(): Promise<void> {
    const { link } = this;
    while (this.#queue.length > 0) {
      const payload = this.#queue.shift()!;
      link.budget.release(payload.length);
      if (link.signal.aborted) continue;
      if (await this.#post(payload)) continue;
      let dropped = 1;
      for (const rest of this.#queue) {
        link.budget.release(rest.length);
        dropped++;
      }
      this.#queue = [];
      if (!link.signal.aborted) {
        this.#logDropped(dropped);
        link.reportDropped(dropped);
      }
    }
  }

  /**
   * Logs drops at most once per `dropLogIntervalMs`, with the count since the last line: a
   * peer that is down would otherwise log every heartbeat.
   */
  #logDropped(dropped: number): void {
    this.#droppedSinceLog += dropped;
    const now = performance.now();
    if (now - this.#lastDropLogAt < dropLogIntervalMs) return;
    this.link.log.warn("dropped messages to unreachable peer", {
      "dropped-messages": this.#droppedSinceLog,
    });
    this.#droppedSinceLog = 0;
    this.#lastDropLogAt = now;
  }

  async #post(payload: Uint8Array): Promise<boolean> {
    const { link } = this;
    const url = link.pickUrl();
    const attempt = new AbortController();
    const timeout = setTimeout(
      () => attempt.abort(new Error("pipeline post timed out")),
      link.timing.pipelineTimeoutMs,
    );
    const stop = () => attempt.abort();
    link.signal.addEventListener("abort", stop, { once: true });
    try {
      const headers = peerRequestHeaders(link.identity, link.id);
      headers.set("Content-Type", "application/protobuf");
      const response = await fetch(new URL(RaftPath.pipeline, url), {
        method: "POST",
        headers,
        body: payload as Uint8Array<ArrayBuffer>,
        signal: attempt.signal,
      });
      return await this.#checkAnswer(response, url, "pipeline");
    } catch (err) {
      if (!link.signal.aborted) {
        link.urlFailed(url);
        link.deactivate(`pipeline post: ${attempt.signal.reason ?? err}`);
      }
      return false;
    } finally {
      clearTimeout(timeout);
      link.signal.removeEventListener("abort", stop);
    }
  }

  /** Reads a post's answer: true for 204; anything else is logged and is a failure. */
  async #checkAnswer(response: Response, url: URL, what: string): Promise<boolean> {
    const { link } = this;
    const text = await readAnswerText(response, link.limits.maxErrorBodyBytes);
    if (response.status === 204) {
      link.activate();
      return true;
    }
    if (response.status === 403) link.reportRemoved();
    link.urlFailed(url);
    link.deactivate(`${what} answered ${response.status}: ${text}`);
    return false;
  }

  /**
   * Sends a MsgSnap followed by the database from `source`, and reports the outcome through
   * `onStatus` (raft's ReportSnapshot). Only one snapshot is in flight per peer: raft sends
   * the next only after hearing how the last went, so a second one fails at once.
   */
  sendSnapshot(
    message: Message,
    source: SnapshotBodySource | undefined,
    onStatus: (ok: boolean) => void,
  ): void {
    const { link } = this;
    if (this.#snapshot !== null || source === undefined || link.signal.aborted) {
      link.log.warn("refused to send snapshot", {
        reason: source === undefined ? "no snapshot source" : "a snapshot is already in flight",
      });
      link.reportUnreachable();
      onStatus(false);
      return;
    }
    this.#snapshot = this.#postSnapshot(message, source).then((ok) => {
      this.#snapshot = null;
      if (!ok) link.reportUnreachable();
      onStatus(ok);
    });
  }

  async #postSnapshot(message: Message, source: SnapshotBodySource): Promise<boolean> {
    const { link } = this;
    const url = link.pickUrl();
    // A receiver that stops reading (or a source that stops producing) must not hold the one
    // snapshot slot forever: without progress for the stall timeout, the send fails.
    const attempt = new AbortController();
    const stop = () => attempt.abort();
    link.signal.addEventListener("abort", stop, { once: true });
    let lastProgressAt = performance.now();
    const stallMs = link.timing.snapshotStallTimeoutMs;
    const watchdog = setInterval(() => {
      if (performance.now() - lastProgressAt > stallMs) {
        attempt.abort(new Error(`snapshot send made no progress for ${stallMs} ms`));
      }
    }, Math.max(10, stallMs / 4));
    let database: ReadableStream<Uint8Array> | null = null;
    let databaseReader: ReadableStreamDefaultReader<Uint8Array> | null = null;
    let sentBytes = 0;
    try {
      database = await source(message);
      const head = encodeFrame(encodeMessage(message));
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(head);
        },
        async pull(controller) {
          databaseReader ??= database!.getReader();
          const { done, value } = await databaseReader.read();
          lastProgressAt = performance.now();
          if (done) controller.close();
          else {
            sentBytes += value.length;
            controller.enqueue(value);
          }
        },
        async cancel(reason) {
          await (databaseReader ?? database!).cancel(reason).catch(() => {});
        },
      }, { highWaterMark: 0 });
      link.log.info("sending database snapshot", {
        "snapshot-index": message.snapshot?.metadata.index,
      });
      const headers = peerRequestHeaders(link.identity, link.id);
      headers.set("Content-Type", "application/octet-stream");
      const response = await fetch(new URL(RaftPath.snapshot, url), {
        method: "POST",
        headers,
        body,
        duplex: "half",
        signal: attempt.signal,
      } as RequestInit);
      const ok = await this.#checkAnswer(response, url, "snapshot post");
      if (ok) link.log.info("sent database snapshot", { "database-bytes": sentBytes });
      return ok;
    } catch (err) {
      if (!link.signal.aborted) {
        link.urlFailed(url);
        link.deactivate(`snapshot post: ${attempt.signal.reason ?? err}`);
      }
      return false;
    } finally {
      clearInterval(watchdog);
      link.signal.removeEventListener("abort", stop);
      // The source is done with either way: a finished reader ignores this.
      await (databaseReader ?? database)?.cancel().catch(() => {});
    }
  }
}
