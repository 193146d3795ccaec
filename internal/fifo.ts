/**
 * A first-in, first-out queue over one array.
 *
 * @module
 */

/** Taken slots at the front beyond which a queue moves its values down (amortised O(1)). */
const compactAfterTaken = 64;

/**
 * A FIFO queue for values that come and go all the time (watch batches, watchers with
 * something to send, messages for a peer). `Array.prototype.shift` copies the rest of the
 * array, and emptying an array with `length = 0` gives up its backing store, so the next push
 * allocates again; this queue clears each taken slot (the value can be collected) and reuses
 * the slots. Its array is bounded by twice the most values it held at once.
 */
export class Fifo<T> {
  #items: (T | undefined)[] = [];
  #head = 0;
  #tail = 0;

  /** Values in the queue. */
  get length(): number {
    return this.#tail - this.#head;
  }

  /** Appends `value` at the back. */
  push(value: T): void {
    if (this.#tail < this.#items.length) this.#items[this.#tail] = value;
    else this.#items.push(value);
    this.#tail++;
  }

  /** The front value, left in place. */
  peek(): T | undefined {
    return this.#head < this.#tail ? this.#items[this.#head] : undefined;
  }

  /** The back value, left in place. */
  peekLast(): T | undefined {
    return this.#head < this.#tail ? this.#items[this.#tail - 1] : undefined;
  }

  /** Takes the front value. */
  shift(): T | undefined {
    if (this.#head === this.#tail) return undefined;
    const value = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    if (this.#head === this.#tail) {
      this.#head = 0;
      this.#tail = 0;
    } else if (this.#head > compactAfterTaken && this.#head * 2 > this.#tail) {
      this.#items.copyWithin(0, this.#head, this.#tail);
      this.#items.fill(undefined, this.#tail - this.#head, this.#tail);
      this.#tail -= this.#head;
      this.#head = 0;
    }
    return value;
  }

  /** Takes every value, front first, and gives the array's memory back. */
  drain(): T[] {
    const values = this.#items.slice(this.#head, this.#tail) as T[];
    this.#items = [];
    this.#head = 0;
    this.#tail = 0;
    return values;
  }
}
