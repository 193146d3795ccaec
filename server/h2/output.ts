/**
 * The bytes a connection will write: frames are appended into large blocks, and each flush
 * hands all of them to the socket as one write. Serializing straight into shared blocks costs
 * no allocation per frame, and one write per event-loop turn (for every response produced in
 * it) is what makes a loaded connection cheap.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { frameHeaderBytes, writeFrameHeader } from "./frames.ts";

/** Size of a fresh block; larger single frames get a block of their own size. */
const blockBytes = 16 * 1024;

/** Frames waiting for the next flush. */
export class OutputBuffer {
  #blocks: Uint8Array[] = [];
  #current: Uint8Array = Buffer.allocUnsafe(blockBytes);
  /** Where the current block's untaken bytes start: bytes before it belong to the socket. */
  #start = 0;
  #used = 0;
  #pendingBytes = 0;

  /** Bytes appended since the last take(). */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  /** Appends one frame: its header and `payload` (or `payloadBytes` written by `fill`). */
  frame(type: number, flags: number, streamId: number, payload?: Uint8Array): void {
    const length = payload === undefined ? 0 : payload.length;
    const at = this.#reserve(frameHeaderBytes + length);
    writeFrameHeader(this.#current, at, length, type, flags, streamId);
    if (length > 0) this.#current.set(payload!, at + frameHeaderBytes);
  }

  /**
   * Appends one frame whose payload `fill` writes into `out` at `offset` (exactly
   * `payloadBytes` of them).
   */
  frameWith(
    type: number,
    flags: number,
    streamId: number,
    payloadBytes: number,
    fill: (out: Uint8Array, offset: number) => void,
  ): void {
    const at = this.#reserve(frameHeaderBytes + payloadBytes);
    writeFrameHeader(this.#current, at, payloadBytes, type, flags, streamId);
    fill(this.#current, at + frameHeaderBytes);
  }

  /** Appends a DATA-like frame whose payload is `source[from, from + length)`. */
  frameSlice(
    type: number,
    flags: number,
    streamId: number,
    source: Uint8Array,
    from: number,
    length: number,
  ): void {
    const at = this.#reserve(frameHeaderBytes + length);
    writeFrameHeader(this.#current, at, length, type, flags, streamId);
    this.#current.set(source.subarray(from, from + length), at + frameHeaderBytes);
  }

  /** Everything appended so far, as one byte array (null when nothing is); empties the buffer. */
  take(): Uint8Array | null {
    if (this.#pendingBytes === 0) return null;
    let out: Uint8Array;
    const tail = this.#current.subarray(this.#start, this.#used);
    if (this.#blocks.length === 0) {
      out = tail;
    } else {
      out = Buffer.allocUnsafe(this.#pendingBytes);
      let at = 0;
      for (const block of this.#blocks) {
        out.set(block, at);
        at += block.length;
      }
      out.set(tail, at);
      this.#blocks = [];
    }
    // The socket may hold on to what it was given: later frames go after it, never over it.
    this.#start = this.#used;
    this.#pendingBytes = 0;
    return out;
  }

  #reserve(bytes: number): number {
    if (this.#used + bytes > this.#current.length) {
      if (this.#used > this.#start) {
        this.#blocks.push(this.#current.subarray(this.#start, this.#used));
      }
      this.#current = Buffer.allocUnsafe(Math.max(blockBytes, bytes));
      this.#start = 0;
      this.#used = 0;
    }
    const at = this.#used;
    this.#used += bytes;
    this.#pendingBytes += bytes;
    return at;
  }
}
