/**
 * The reading end of a stream: a loop that GETs the peer's `/raft/stream/{kind}/{our id}` and
 * hands the frames of the answer's body to raft, redialling with bounded exponential backoff
 * when the stream cannot be opened or breaks.
 *
 * @module
 */
import { formatId, peerRequestHeaders } from "./headers.ts";
import { RaftPath, type StreamKind } from "./handler.ts";
import { ByteReader } from "./byte_reader.ts";
import {
  FrameTooLargeError,
  isLinkHeartbeat,
  isLocalMessageType,
  readFramedMessage,
} from "./message_codec.ts";
import { abortableDelay } from "../internal/delay.ts";
import { type PeerLink, readAnswerText } from "./peer_link.ts";

/** Thrown into a stream that delivered nothing for longer than the idle timeout. */
class StreamIdleError extends Error {
  constructor(idleMs: number) {
    super(`stream idle for ${idleMs} ms`);
    this.name = "StreamIdleError";
  }
}

/** Reads one stream kind from one peer until the link stops. */
export class StreamReader {
  #connected = false;
  /** Aborted to cut a backoff wait short (the peer's URLs changed). */
  #wake = new AbortController();

  /** A reader of `kind` frames from the peer of `link`. */
  constructor(readonly kind: StreamKind, private readonly link: PeerLink) {}

  /** True while a stream from the peer is open. */
  get connected(): boolean {
    return this.#connected;
  }

  /** Redials now instead of after the current backoff wait. */
  wake(): void {
    this.#wake.abort();
  }

  /** Runs until the link's signal aborts; never rejects. */
  async run(): Promise<void> {
    const { timing, signal } = this.link;
    let backoffMs = timing.dialBackoffInitialMs;
    while (!signal.aborted) {
      const opened = await this.#dialAndRead();
      if (signal.aborted) break;
      if (opened) backoffMs = timing.dialBackoffInitialMs;
      const wake = this.#wake.signal;
      if (!wake.aborted) await abortableDelay(backoffMs, AbortSignal.any([signal, wake]));
      if (wake.aborted) {
        // New URLs: dial them at once, and back off from the start if they fail too.
        this.#wake = new AbortController();
        backoffMs = timing.dialBackoffInitialMs;
      } else {
        backoffMs = Math.min(backoffMs * 2, timing.dialBackoffMaxMs);
      }
    }
  }

  /** One connection: true when it was opened (so the next failure starts a fresh backoff). */
  async #dialAndRead(): Promise<boolean> {
    const { link } = this;
    const url = link.pickUrl();
    const target = new URL(
      `${RaftPath.streamPrefix}${this.kind}/${formatId(link.identity.localId)}`,
      url,
    );
    const connection = new AbortController();
    const stop = () => connection.abort();
    link.signal.addEventListener("abort", stop, { once: true });
    let lastChunkAt = performance.now();
    const idleCheck = setInterval(() => {
      if (performance.now() - lastChunkAt > link.timing.streamIdleTimeoutMs) {
        connection.abort(new StreamIdleError(link.timing.streamIdleTimeoutMs));
      }
    }, Math.max(10, link.timing.streamIdleTimeoutMs / 4));
    let opened = false;
    try {
      const response = await fetch(target, {
        headers: peerRequestHeaders(link.identity, link.id),
        signal: connection.signal,
      });
      if (response.status !== 200) {
        const text = await readAnswerText(response, link.limits.maxErrorBodyBytes);
        if (response.status === 410) link.reportRemoved();
        link.urlFailed(url);
        link.deactivate(`stream ${this.kind} dial answered ${response.status}: ${text}`);
        return false;
      }
      opened = true;
      this.#connected = true;
      link.activate();
      link.log.info("established stream from remote peer", { stream: this.kind });
      await this.#readFrames(response.body, () => lastChunkAt = performance.now());
      link.log.warn("stream from remote peer ended", { stream: this.kind });
      return true;
    } catch (err) {
      if (link.signal.aborted) return opened;
      const reason = connection.signal.aborted && connection.signal.reason instanceof Error
        ? connection.signal.reason
        : err;
      if (err instanceof FrameTooLargeError) {
        link.log.error("closed stream carrying an oversized frame", {
          stream: this.kind,
          error: err.message,
        });
      }
      if (!opened) link.urlFailed(url);
      link.deactivate(`stream ${this.kind}: ${reason}`);
      return opened;
    } finally {
      this.#connected = false;
      clearInterval(idleCheck);
      link.signal.removeEventListener("abort", stop);
      connection.abort(); // releases the body, if the stream ended without reading it all
    }
  }

  async #readFrames(
    body: ReadableStream<Uint8Array> | null,
    onChunk: () => void,
  ): Promise<void> {
    if (body === null) return;
    const { link } = this;
    const reader = new ByteReader(body, onChunk);
    try {
      for (;;) {
        const message = await readFramedMessage(reader, link.limits.maxMessageBytes);
        if (message === null) return;
        if (isLinkHeartbeat(message)) continue;
        if (
          message.from !== link.id || message.to !== link.identity.localId ||
          isLocalMessageType(message.type)
        ) {
          link.log.warn("dropped misaddressed message from stream", {
            stream: this.kind,
            type: message.type,
            from: formatId(message.from),
            to: formatId(message.to),
          });
          continue;
        }
        await link.deliver(message);
        onChunk(); // time spent in raft is not the peer's silence
      }
    } finally {
      await reader.cancel();
    }
  }
}
