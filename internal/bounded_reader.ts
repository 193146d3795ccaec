/**
 * Bounded body reading: the total is capped and checked as bytes arrive, before anything past
 * the cap is buffered (etcd's LimitedBufferReader only caps each read call; this caps the sum).
 *
 * @module
 */

import { concatBytes } from "./bytes.ts";

/** Thrown when a body is longer than its cap. */
export class BodyTooLargeError extends Error {
  /** Names the cap that was exceeded. */
  constructor(readonly maxBytes: number) {
    super(`body exceeds ${maxBytes} bytes`);
    this.name = "BodyTooLargeError";
  }
}

/**
 * Reads a whole body of at most `maxBytes`. Longer bodies are cancelled as soon as the cap is
 * passed and rejected with {@linkcode BodyTooLargeError}.
 */
export async function readBounded(
  body: ReadableStream<Uint8Array> | null,
  maxBytes: number,
): Promise<Uint8Array> {
  if (body === null) return new Uint8Array();
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > maxBytes) {
        await reader.cancel().catch(() => {});
        throw new BodyTooLargeError(maxBytes);
      }
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  return chunks.length === 1 ? chunks[0] : concatBytes(...chunks);
}
