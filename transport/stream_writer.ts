/**
 * The writing end of a stream: messages for one peer, written as frames into the body of the
 * GET that peer opened to us (etcd's model: a member receives on the streams it dials, and
 * sends on the streams its peers dialled). Frames go out in the order they were queued.
 *
 * The body is a pull source with no buffer of its own (high-water mark 0): the HTTP server
 * pulls when the socket can take more, so a slow peer leaves messages in this writer's queue,
 * which the peer's {@linkcode SendBudget} bounds.
 *
 * @module
 */
import { assert } from "../internal/assert.ts";
import { Fifo } from "../internal/fifo.ts";
import type { Logger } from "../internal/logger.ts";
import { frameHeaderBytes, linkHeartbeatBytes, writeFrameHeader } from "./message_codec.ts";
import type { SendBudget } from "./send_budget.ts";

interface Connection {
  readonly serial: number;
  controller: ReadableStreamDefaultController<Uint8Array> | null;
  closed: boolean;
  /** Resolves a pull that waits for something to write. */
  wake: (() => void) | null;
}

/** Writes queued message payloads as frames to the current stream of one peer. */
export class StreamWriter {
  readonly #queue = new Fifo<Uint8Array>();
  #connection: Connection | null = null;
  #serial = 0;
  #closed = false;

  /**
   * A writer that takes room for queued messages from `budget`, coalesces frames into chunks
   * of up to `maxChunkBytes`, and calls `onLost` with the number of messages it dropped when
   * the peer went away with messages still queued.
   */
  constructor(
    readonly name: string,
    private readonly budget: SendBudget,
    private readonly maxChunkBytes: number,
    private readonly log: Logger,
    private readonly onLost: (droppedMessages: number) => void,
  ) {}

  /** True while a peer's stream is attached and messages can be queued. */
  get attached(): boolean {
    return this.#connection !== null;
  }

  /**
   * Opens a new stream body, replacing (and closing) the current one: a peer redials when its
   * reading end broke, so the old body has no reader. Queued messages stay queued and go out
   * on the new body. A link heartbeat is written first so the peer sees the stream is up.
   */
  attach(): ReadableStream<Uint8Array> {
    assert(!this.#closed, `stream writer ${this.name}: attach after close`);
    const previous = this.#connection;
    if (previous !== null) {
      this.log.info("replaced stream to remote peer", { stream: this.name });
      this.#end(previous);
    }
    const connection: Connection = {
      serial: ++this.#serial,
      controller: null,
      closed: false,
      wake: null,
    };
    this.#connection = connection;
    this.#push(linkHeartbeatBytes);
    return new ReadableStream<Uint8Array>({
      start: (controller) => {
        connection.controller = controller;
      },
      pull: (controller) => this.#pull(connection, controller),
      cancel: () => this.#lost(connection),
    }, { highWaterMark: 0 });
  }

  /**
   * Queues a message payload for the attached stream. False when no stream is attached or the
   * peer's budget is spent; the caller then drops the message (or tries the pipeline).
   */
  enqueue(payload: Uint8Array): boolean {
    if (this.#connection === null) return false;
    if (!this.budget.reserve(payload.length)) return false;
    this.#push(payload);
    return true;
  }

  /** Queues a link heartbeat if nothing else is waiting to be written. */
  heartbeat(): void {
    if (this.#connection === null || this.#queue.length > 0) return;
    this.#push(linkHeartbeatBytes);
  }

  /** Ends the current stream and drops what is queued, for good (the peer or transport stops). */
  close(): void {
    this.#closed = true;
    const connection = this.#connection;
    this.#connection = null;
    if (connection !== null) this.#end(connection);
    this.#drop();
  }

  #push(payload: Uint8Array): void {
    this.#queue.push(payload);
    const wake = this.#connection?.wake;
    if (wake) wake();
  }

  #end(connection: Connection): void {
    connection.closed = true;
    try {
      connection.controller?.close();
    } catch {
      // Already closed or cancelled by the server.
    }
    connection.wake?.();
  }

  /** Drops every queued message and returns how many real messages that was. */
  #drop(): number {
    let dropped = 0;
    for (const payload of this.#queue.drain()) {
      if (payload === linkHeartbeatBytes) continue;
      this.budget.release(payload.length);
      dropped++;
    }
    return dropped;
  }

  #lost(connection: Connection): void {
    connection.closed = true;
    connection.wake?.();
    if (this.#connection !== connection) return;
    this.#connection = null;
    const dropped = this.#drop();
    this.log.warn("lost stream to remote peer", { stream: this.name, "dropped-messages": dropped });
    if (dropped > 0) this.onLost(dropped);
  }

  async #pull(
    connection: Connection,
    controller: ReadableStreamDefaultController<Uint8Array>,
  ): Promise<void> {
    while (this.#queue.length === 0 || connection !== this.#connection) {
      if (connection.closed) {
        try {
          controller.close();
        } catch {
          // Closed by #end already.
        }
        return;
      }
      await new Promise<void>((resolve) => connection.wake = resolve);
      connection.wake = null;
    }
    this.#writeBatch(controller);
  }

  /** Moves queued frames into the body: small frames coalesced, a large one without a copy. */
  #writeBatch(controller: ReadableStreamDefaultController<Uint8Array>): void {
    const batch: Uint8Array[] = [];
    let batchBytes = 0;
    for (let payload = this.#queue.peek(); payload !== undefined; payload = this.#queue.peek()) {
      const frameBytes = frameHeaderBytes + payload.length;
      if (batch.length > 0 && batchBytes + frameBytes > this.maxChunkBytes) break;
      this.#queue.shift();
      if (payload !== linkHeartbeatBytes) this.budget.release(payload.length);
      batch.push(payload);
      batchBytes += frameBytes;
    }
    if (batch.length === 1 && batchBytes > this.maxChunkBytes) {
      const header = new Uint8Array(frameHeaderBytes);
      writeFrameHeader(new DataView(header.buffer), 0, batch[0].length);
      controller.enqueue(header);
      controller.enqueue(batch[0]);
      return;
    }
    const chunk = new Uint8Array(batchBytes);
    const view = new DataView(chunk.buffer);
    let at = 0;
    for (const payload of batch) {
      writeFrameHeader(view, at, payload.length);
      chunk.set(payload, at + frameHeaderBytes);
      at += frameHeaderBytes + payload.length;
    }
    controller.enqueue(chunk);
  }
}
