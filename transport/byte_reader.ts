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

/**
 * Bytes a reader reads into at once from a byte stream (its one scratch buffer), so also the
 * largest chunk it sees.
 */
export const scratchBytes = 64 * 1024;

/**
 * Reads exact byte counts from a `ReadableStream`, keeping what it read past the last one.
 *
 * Byte streams (the bodies of `fetch` responses and of `Deno.serve` requests) are read into
 * one scratch buffer that every read reuses. Their default readers instead return each chunk
 * in a fresh 64 KiB ArrayBuffer, however few bytes it holds: at a few thousand raft messages
 * a second that is hundreds of MB/s of external memory, and V8 answers that with a full GC
 * every few hundred ms (measured on three members under put load: 5-11 mark-compacts per 5 s
 * on each follower, 4-16 ms pauses each).
 */
export class ByteReader {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array> | ReadableStreamBYOBReader;
  /** The scratch buffer, for a byte stream; null when chunks come from a default reader. */
  #scratch: Uint8Array | null;
  /**
   * Bytes read past the last value. With a scratch buffer this is a view of it, valid only
   * until the next read, so every path copies it out before reading again.
   */
  #leftover: Uint8Array = new Uint8Array();
  #released = false;
  #overCap = false;

  /**
   * Locks `stream` for reading. `onChunk` is told of every chunk that arrives (a stream's
   * liveness: link heartbeats are chunks too).
   */
  constructor(stream: ReadableStream<Uint8Array>, readonly onChunk?: (bytes: number) => void) {
    let byob: ReadableStreamBYOBReader | null = null;
    try {
      byob = stream.getReader({ mode: "byob" });
    } catch {
      // Not a byte stream (tests, or a body built in JavaScript): chunks as they come.
    }
    this.#reader = byob ?? stream.getReader();
    this.#scratch = byob ? new Uint8Array(scratchBytes) : null;
  }

  /** The next non-empty chunk (a view of the scratch buffer, for a byte stream), or null. */
  async #next(): Promise<Uint8Array | null> {
    for (;;) {
      let result: ReadableStreamReadResult<Uint8Array>;
      if (this.#scratch === null) {
        result = await (this.#reader as ReadableStreamDefaultReader<Uint8Array>).read();
      } else {
        // The read takes the buffer over and hands the same memory back as `value`.
        result = await (this.#reader as ReadableStreamBYOBReader).read(this.#scratch);
        if (result.value !== undefined) this.#scratch = new Uint8Array(result.value.buffer);
      }
      const { done, value } = result;
      if (done || value === undefined) return null;
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
    // Chunks handed on outlive the next read, so none may be a view of the scratch buffer.
    let pending: Uint8Array | null = this.#leftover.length > 0 ? this.#leftover.slice() : null;
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
        controller.enqueue(this.#scratch === null ? chunk : chunk.slice());
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
