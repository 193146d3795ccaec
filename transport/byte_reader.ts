/**
 * Exact-length reads from a byte stream, for length-prefixed frames: the caller checks a length
 * before asking for that many bytes, and only then is a buffer of that size allocated.
 *
 * @module
 */
import { BodyTooLargeError } from "../internal/bounded_reader.ts";

/** Thrown when a stream ends in the middle of a value it was expected to carry. */
export class TruncatedStreamError extends Error {
  /** Names how many bytes were wanted and how many arrived. */
  constructor(readonly wantedBytes: number, readonly gotBytes: number) {
    super(`stream ended after ${gotBytes} of ${wantedBytes} bytes`);
    this.name = "TruncatedStreamError";
  }
}

/** Reads exact byte counts from a `ReadableStream`, keeping what it read past the last one. */
export class ByteReader {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  #leftover: Uint8Array = new Uint8Array();
  #released = false;
  #overCap = false;

  /**
   * Locks `stream` for reading. `onChunk` is told of every chunk that arrives (a stream's
   * liveness: link heartbeats are chunks too).
   */
  constructor(stream: ReadableStream<Uint8Array>, readonly onChunk?: (bytes: number) => void) {
    this.#reader = stream.getReader();
  }

  async #next(): Promise<Uint8Array | null> {
    for (;;) {
      const { done, value } = await this.#reader.read();
      if (done) return null;
      this.onChunk?.(value.length);
      if (value.length > 0) return value;
    }
  }

  /**
   * Reads exactly `length` bytes into a new array (never a view of the stream's chunks, so a
   * decoded message does not keep a large chunk alive). Returns null when the stream ended
   * before the first byte; throws {@linkcode TruncatedStreamError} when it ended after it.
   */
  async readExact(length: number): Promise<Uint8Array | null> {
    if (this.#leftover.length >= length) {
      const out = this.#leftover.slice(0, length);
      this.#leftover = this.#leftover.subarray(length);
      return out;
    }
    const out = new Uint8Array(length);
    let filled = this.#leftover.length;
    out.set(this.#leftover);
    this.#leftover = new Uint8Array();
    while (filled < length) {
      const chunk = await this.#next();
      if (chunk === null) {
        if (filled === 0) return null;
        throw new TruncatedStreamError(length, filled);
      }
      const take = Math.min(chunk.length, length - filled);
      out.set(chunk.subarray(0, take), filled);
      filled += take;
      if (take < chunk.length) this.#leftover = chunk.subarray(take);
    }
    return out;
  }

  /**
   * The rest of the stream (what was read past the last value, then everything after it) as a
   * new stream that errors with {@linkcode BodyTooLargeError} once more than `maxBytes` went
   * through. Cancelling the returned stream cancels the source. The reader is spent after this.
   */
  rest(maxBytes: number): ReadableStream<Uint8Array> {
    this.#released = true;
    let total = 0;
    let pending: Uint8Array | null = this.#leftover.length > 0 ? this.#leftover : null;
    this.#leftover = new Uint8Array();
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        const chunk = pending ?? await this.#next();
        pending = null;
        if (chunk === null) {
          controller.close();
          return;
        }
        total += chunk.length;
        if (total > maxBytes) {
          this.#overCap = true;
          await this.#reader.cancel().catch(() => {});
          controller.error(new BodyTooLargeError(maxBytes));
          return;
        }
        controller.enqueue(chunk);
      },
      cancel: async (reason) => {
        await this.#reader.cancel(reason).catch(() => {});
      },
    }, { highWaterMark: 0 });
  }

  /** True once the stream returned by {@linkcode ByteReader.rest} went past its cap. */
  get overCap(): boolean {
    return this.#overCap;
  }

  /** Cancels the source stream (no more bytes are wanted from it). */
  async cancel(reason?: unknown): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    await this.#reader.cancel(reason).catch(() => {});
  }
}
