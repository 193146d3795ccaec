/**
 * Everything the local member keeps for one peer: the two stream writers the peer's dials
 * attach to, the two stream readers we dial, the pipeline and snapshot sender, the send
 * budget they share, and the peer's reachability.
 *
 * @module
 */
import { assert } from "../internal/assert.ts";
import type { Logger } from "../internal/logger.ts";
import { type Message, MessageType } from "../raft/types.ts";
import type { StreamKind } from "./handler.ts";
import type { PeerIdentity } from "./headers.ts";
import type { TransportLimits, TransportTiming } from "./limits.ts";
import { encodeMessage } from "./message_codec.ts";
import type { PeerLink } from "./peer_link.ts";
import { Pipeline, type SnapshotBodySource } from "./pipeline.ts";
import { SendBudget } from "./send_budget.ts";
import { StreamReader } from "./stream_reader.ts";
import { StreamWriter } from "./stream_writer.ts";

/** How one peer's link is doing. */
export interface PeerLinkStatus {
  /** The peer's member ID. */
  id: bigint;
  /** The peer's URLs. */
  urls: string[];
  /** True after the peer last answered, until an attempt to reach it failed. */
  active: boolean;
  /** When the peer became active (ms since the epoch), or null while inactive. */
  activeSince: number | null;
  /** The last failure to reach the peer, if any. */
  lastError: string | null;
  /** Streams the peer dialled to us, which carry our messages to it. */
  outgoingStreams: Record<StreamKind, boolean>;
  /** Streams we dialled to the peer, which carry its messages to us. */
  incomingStreams: Record<StreamKind, boolean>;
  /** Messages waiting to be written to the peer. */
  queuedMessages: number;
  /** Bytes waiting to be written to the peer. */
  queuedBytes: number;
  /** Messages dropped because the peer could not take them. */
  droppedMessages: number;
}

/** What a peer needs from the transport. */
export interface PeerDeps {
  identity: PeerIdentity;
  limits: TransportLimits;
  timing: TransportTiming;
  log: Logger;
  deliver(message: Message): Promise<void>;
  onUnreachable(id: bigint): void;
  onSnapshotStatus(id: bigint, ok: boolean): void;
  onRemoved(): void;
  snapshotBody: SnapshotBodySource | undefined;
}

/** One peer's link. */
export class Peer implements PeerLink {
  readonly identity: PeerIdentity;
  readonly limits: TransportLimits;
  readonly timing: TransportTiming;
  readonly log: Logger;
  readonly budget: SendBudget;
  readonly #stop = new AbortController();
  #urls: URL[];
  #picked = 0;
  #active = false;
  #activeSince: number | null = null;
  #lastError: string | null = null;
  #dropped = 0;
  readonly #writers: Record<StreamKind, StreamWriter>;
  readonly #readers: Record<StreamKind, StreamReader>;
  readonly #pipeline: Pipeline;
  readonly #loops: Promise<void>[];

  /** Starts the link to peer `id` at `urls` (at least one). */
  constructor(readonly id: bigint, urls: URL[], private readonly deps: PeerDeps) {
    assert(urls.length > 0, "peer: at least one URL");
    this.#urls = urls;
    this.identity = deps.identity;
    this.limits = deps.limits;
    this.timing = deps.timing;
    this.log = deps.log.with({ "remote-peer-id": id.toString(16) });
    this.budget = new SendBudget(
      deps.limits.maxQueuedMessagesPerPeer,
      deps.limits.maxQueuedBytesPerPeer,
    );
    const lost = (dropped: number) => this.reportDropped(dropped);
    const writer = (kind: StreamKind) =>
      new StreamWriter(kind, this.budget, deps.limits.maxStreamChunkBytes, this.log, lost);
    this.#writers = { msgapp: writer("msgapp"), message: writer("message") };
    this.#readers = {
      msgapp: new StreamReader("msgapp", this),
      message: new StreamReader("message", this),
    };
    this.#pipeline = new Pipeline(this);
    this.#loops = [this.#readers.msgapp.run(), this.#readers.message.run()];
  }

  /** Aborted when the peer stops. */
  get signal(): AbortSignal {
    return this.#stop.signal;
  }

  /** The peer's URLs. */
  get urls(): readonly URL[] {
    return this.#urls;
  }

  pickUrl(): URL {
    return this.#urls[this.#picked];
  }

  urlFailed(url: URL): void {
    if (this.#urls[this.#picked] === url) this.#picked = (this.#picked + 1) % this.#urls.length;
  }

  activate(): void {
    if (this.#active) return;
    this.#active = true;
    this.#activeSince = Date.now();
    this.log.info("peer became active");
  }

  deactivate(reason: string): void {
    this.#lastError = reason;
    if (!this.#active) {
      this.log.debug("peer is still inactive", { reason });
      return;
    }
    this.#active = false;
    this.#activeSince = null;
    this.log.warn("peer became inactive", { reason });
  }

  reportUnreachable(): void {
    safely(this.log, () => this.deps.onUnreachable(this.id));
  }

  reportDropped(count: number): void {
    this.#dropped += count;
    this.reportUnreachable();
  }

  reportRemoved(): void {
    this.log.error("peer says the local member was removed from the cluster");
    safely(this.log, () => this.deps.onRemoved());
  }

  async deliver(message: Message): Promise<void> {
    try {
      await this.deps.deliver(message);
    } catch (err) {
      this.log.error("failed to process raft message", { error: String(err) });
    }
  }

  /** Replaces the peer's URLs and redials stream readers that are waiting to retry. */
  update(urls: URL[]): void {
    assert(urls.length > 0, "peer: at least one URL");
    this.#urls = urls;
    this.#picked = 0;
    this.#readers.msgapp.wake();
    this.#readers.message.wake();
  }

  /** Opens a stream body for the peer's dial of `kind` (see {@linkcode StreamWriter.attach}). */
  attach(kind: StreamKind): ReadableStream<Uint8Array> | null {
    if (this.#stop.signal.aborted) return null;
    this.activate();
    return this.#writers[kind].attach();
  }

  /** Writes a link heartbeat on idle streams. */
  heartbeat(): void {
    this.#writers.msgapp.heartbeat();
    this.#writers.message.heartbeat();
  }

  /**
   * Sends one message: a MsgSnap through the snapshot endpoint; a MsgApp on the msgapp stream
   * if the peer dialled one; anything on the message stream if it did; else the pipeline.
   * What cannot be queued is dropped and reported unreachable.
   */
  send(message: Message): void {
    if (this.#stop.signal.aborted) return;
    if (message.type === MessageType.snap) {
      this.#pipeline.sendSnapshot(
        message,
        this.deps.snapshotBody,
        (ok) => safely(this.log, () => this.deps.onSnapshotStatus(this.id, ok)),
      );
      return;
    }
    const payload = encodeMessage(message);
    let accepted = false;
    if (payload.length > this.limits.maxMessageBytes) {
      this.log.error("dropped message larger than peers accept", { bytes: payload.length });
    } else if (message.type === MessageType.app && this.#writers.msgapp.attached) {
      accepted = this.#writers.msgapp.enqueue(payload);
    } else if (this.#writers.message.attached) {
      accepted = this.#writers.message.enqueue(payload);
    } else {
      accepted = this.#pipeline.enqueue(payload);
    }
    if (!accepted) {
      this.log.debug("dropped message to peer", { type: message.type });
      this.reportDropped(1);
    }
  }

  /** The link's status. */
  status(): PeerLinkStatus {
    return {
      id: this.id,
      urls: this.#urls.map((u) => u.href),
      active: this.#active,
      activeSince: this.#activeSince,
      lastError: this.#lastError,
      outgoingStreams: {
        msgapp: this.#writers.msgapp.attached,
        message: this.#writers.message.attached,
      },
      incomingStreams: {
        msgapp: this.#readers.msgapp.connected,
        message: this.#readers.message.connected,
      },
      queuedMessages: this.budget.messages,
      queuedBytes: this.budget.bytes,
      droppedMessages: this.#dropped,
    };
  }

  /** Stops every loop and fetch of the link; resolves when all have ended. */
  async stop(): Promise<void> {
    this.#stop.abort();
    this.#writers.msgapp.close();
    this.#writers.message.close();
    await Promise.allSettled([...this.#loops, this.#pipeline.settled()]);
  }
}

/** Runs a callback of the server's; a throw is logged, never let into a transport loop. */
export function safely(log: Logger, callback: () => void): void {
  try {
    callback();
  } catch (err) {
    log.error("transport callback failed", { error: String(err) });
  }
}
