/**
 * The bound on what one peer may have waiting to be written, shared by its streams and its
 * pipeline, so a slow or dead peer costs at most this much memory however it is reached.
 *
 * @module
 */
import { assert } from "../internal/assert.ts";

/** Counts queued messages and bytes against fixed maxima. */
export class SendBudget {
  #messages = 0;
  #bytes = 0;

  /** A budget of at most `maxMessages` messages and `maxBytes` bytes. */
  constructor(readonly maxMessages: number, readonly maxBytes: number) {
    assert(maxMessages > 0 && maxBytes > 0, "send budget: maxima must be positive");
  }

  /** Takes room for one message of `bytes`; false (and nothing taken) when it does not fit. */
  reserve(bytes: number): boolean {
    if (this.#messages + 1 > this.maxMessages || this.#bytes + bytes > this.maxBytes) return false;
    this.#messages++;
    this.#bytes += bytes;
    return true;
  }

  /** Gives back the room of one message of `bytes` that was reserved. */
  release(bytes: number): void {
    this.#messages--;
    this.#bytes -= bytes;
    assert(this.#messages >= 0 && this.#bytes >= 0, "send budget: released more than reserved");
  }

  /** Messages currently queued. */
  get messages(): number {
    return this.#messages;
  }

  /** Bytes currently queued. */
  get bytes(): number {
    return this.#bytes;
  }
}
